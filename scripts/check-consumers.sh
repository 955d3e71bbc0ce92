#!/usr/bin/env bash
# Checks the three ways to use blip2, each with the small project in tests/consumers/ built and run:
#   1. add_subdirectory(blip2)
#   2. cmake --install into a temporary prefix, then find_package(blip2)
#   3. the single header single_include/blip2/blip2.hpp (and that it is not stale)
# Build folders go under /tmp (BLIP2_CONSUMERS_DIR overrides); they are removed when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${BLIP2_CONSUMERS_DIR:-$(mktemp -d /tmp/blip2-consumers.XXXXXX)}
mkdir -p "$work"
trap 'echo "check-consumers: FAILED; build folders kept in $work" >&2' ERR
cfg=(-DCMAKE_BUILD_TYPE=Release -Wno-dev)

echo "== single header is up to date"
python3 scripts/amalgamate.py --check

echo "== 1/3 add_subdirectory"
cmake -S tests/consumers/add_subdirectory -B "$work/add_subdirectory" "${cfg[@]}" -DBLIP2_SOURCE_DIR="$root"
cmake --build "$work/add_subdirectory"
"$work/add_subdirectory/consumer"

echo "== 2/3 cmake --install, then find_package"
cmake -S . -B "$work/blip2-build" "${cfg[@]}" -DCMAKE_INSTALL_PREFIX="$work/prefix" \
  -DBLIP2_BUILD_TESTS=OFF -DBLIP2_BUILD_EXAMPLES=OFF -DBLIP2_BUILD_BENCH=OFF
cmake --install "$work/blip2-build"
cmake -S tests/consumers/find_package -B "$work/find_package" "${cfg[@]}" \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DBLIP2_EXPECTED_PREFIX="$work/prefix"
cmake --build "$work/find_package"
"$work/find_package/consumer"

echo "== 3/3 single_include"
cmake -S tests/consumers/single_include -B "$work/single_include" "${cfg[@]}" \
  -DBLIP2_SINGLE_INCLUDE_DIR="$root/single_include"
cmake --build "$work/single_include"
"$work/single_include/consumer"

trap - ERR
[ -n "${BLIP2_CONSUMERS_DIR:-}" ] || rm -rf "$work"
echo "check-consumers: all three integration paths build and run"

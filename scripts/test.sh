#!/usr/bin/env bash
# The test command: installs dependencies, configures, builds and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BLIP2_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)"
# ctest runs test programs side by side, each with OpenMP threads: idle threads must sleep, not
# spin, or they take the cores their siblings need.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"

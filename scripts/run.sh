#!/usr/bin/env bash
# The main job: installs dependencies, builds, and trains the teaching example (its loss falls).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BLIP2_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)" --target train_tiny_transformer
"$build"/examples/train_tiny_transformer "$@"

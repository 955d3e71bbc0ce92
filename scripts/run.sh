#!/usr/bin/env bash
# The main job: BLIP-2 bootstrapped in miniature (examples/bootstrap): frozen unimodal models grown
# from a procedural image-text world, the Q-Former's two stages, and held-out captioning, retrieval
# and VQA; it writes bootstrap-out/report.html and ordinary BLIP-2 model directories, and its last
# line is a JSON object of the held-out metrics. Options go to the program (--quick, --out DIR, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${BLIP2_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$(nproc)" --target bootstrap_blip2 blip2_cli
"$build"/examples/bootstrap_blip2 "$@"

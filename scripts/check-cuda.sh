#!/usr/bin/env bash
# The CUDA build: configures with -DBLIP2_CUDA=ON into build-cuda (BLIP2_CUDA_BUILD_DIR overrides),
# builds the GPU tests only (the CPU tests are the same programs scripts/test.sh already built and
# ran) and runs them. Without a GPU they report "Skipped" (exit code 77).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
  else
    echo "check-cuda: nvcc not found (on PATH or /usr/local/cuda/bin); skipping the CUDA build" >&2
    exit 0
  fi
fi
build=${BLIP2_CUDA_BUILD_DIR:-build-cuda}
jobs=${BLIP2_JOBS:-$(nproc)}
# The NCCL communicator too (its test builds everywhere, runs on a GPU) when MPI is installed and
# the toolkit ships NCCL.
nccl=()
if command -v mpicxx >/dev/null 2>&1 && [ -f "$(dirname "$(command -v nvcc)")/../include/nccl.h" ]; then
  nccl=(-DBLIP2_MPI=ON -DBLIP2_NCCL=ON)
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBLIP2_CUDA=ON -DBLIP2_BUILD_EXAMPLES=OFF -DBLIP2_BUILD_BENCH=OFF \
  "${nccl[@]}"
cmake --build "$build" -j"$jobs" --target blip2_cuda_tests
ctest --test-dir "$build" --output-on-failure -R '_cuda$'

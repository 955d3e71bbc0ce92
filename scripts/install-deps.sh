#!/usr/bin/env bash
# Installs the Debian packages blip2 builds, tests and benchmarks with (skips what is present).
set -euo pipefail
packages=(cmake make g++ libeigen3-dev libxsimd-dev xtl-dev doctest-dev libstb-dev nlohmann-json3-dev
          libopenblas-dev python3 libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y "${missing[@]}"

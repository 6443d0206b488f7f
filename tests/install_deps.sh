#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine: compilers' libraries from
# Debian (OpenBLAS, libjpeg-turbo, nlohmann-json, GoogleTest, zlib, ccache; clang with its sanitizer
# and libFuzzer runtimes for tests/fuzz) and the Python build and test packages from pip. Safe to re-run.
set -euo pipefail

need_apt=()
for pkg in libopenblas-dev libturbojpeg0-dev nlohmann-json3-dev libgtest-dev zlib1g-dev ccache pkg-config g++ \
    clang libclang-rt-14-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

python3 -m pip install -q --upgrade "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja numpy \
  pytest pillow tokenizers safetensors nbclient nbformat ipykernel matplotlib

# Reference-only test dependencies: torch (CPU; this exact version is the wheel machines of this kind
# keep locally, an unpinned torch would pull a multi-GB GPU build), transformers as the official repo
# pins it, and auto-round for the AutoRound checkpoint test. Optional: that test skips without them.
python3 -m pip install -q "torch==2.13.0" "transformers==4.57.1" auto-round \
  || echo "note: torch/transformers/auto-round unavailable; the AutoRound test will be skipped"

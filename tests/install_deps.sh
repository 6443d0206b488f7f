#!/usr/bin/env bash
# Installs what building, using and testing need on a fresh Debian/Ubuntu machine. Safe to re-run.
#
#   bash tests/install_deps.sh             everything: runtime + test-only (what tests/run_all.sh and CI need)
#   bash tests/install_deps.sh --runtime   only what building and using the module needs
#
# Runtime: libraries from Debian (OpenBLAS, libjpeg-turbo, nlohmann-json, zlib, pkg-config, g++) and the
# Python build packages from pip (scikit-build-core, pybind11, cmake, ninja, numpy, pillow).
# Test-only: GoogleTest, ccache, clang with its sanitizer and libFuzzer runtimes (tests/fuzz) from Debian;
# pytest and the reference/notebook/Ray packages from pip.
# The Python packages go to the interpreter `python3` runs: activate a virtual environment first
# (python3 -m venv .venv && . .venv/bin/activate) where the system Python refuses pip installs.
set -euo pipefail

runtime_only=0
for arg in "$@"; do
  case "$arg" in
    --runtime) runtime_only=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install_deps.sh: unknown argument '$arg' (usage: bash tests/install_deps.sh [--runtime])" >&2; exit 2 ;;
  esac
done

apt_pkgs=(libopenblas-dev libturbojpeg0-dev nlohmann-json3-dev zlib1g-dev pkg-config g++)
if [ "$runtime_only" -eq 0 ]; then
  apt_pkgs+=(libgtest-dev ccache clang libclang-rt-14-dev)
fi
need_apt=()
for pkg in "${apt_pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# Runtime: building the module (pip install . or cmake) and running it.
python3 -m pip install -q --upgrade "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja numpy pillow

if [ "$runtime_only" -eq 1 ]; then
  exit 0
fi

# Test-only: pytest and the packages the tests compare against or drive (tokenizers, safetensors, the
# notebooks, Ray for the Ray tests).
python3 -m pip install -q --upgrade pytest tokenizers safetensors nbclient nbformat ipykernel matplotlib \
  "ray[data]>=2.50" tqdm pycocotools "mypy==2.4.1" "ruff==0.17.6"

# Reference-only test dependencies: torch (CPU; this exact version is the wheel machines of this kind
# keep locally, an unpinned torch would pull a multi-GB GPU build), transformers as the official repo
# pins it, and auto-round for the AutoRound checkpoint test. Optional: that test skips without them.
python3 -m pip install -q "torch==2.13.0" "transformers==4.57.1" auto-round \
  || echo "note: torch/transformers/auto-round unavailable; the AutoRound test will be skipped"

#!/usr/bin/env bash
# Sets up a fresh machine (system + Python packages), builds the module and the GoogleTest suite in
# one CMake configure, then runs GoogleTest (ctest) and pytest. Usage: bash tests/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install_deps.sh

# One build: pip builds the extension with the tests switched on, in build/<wheel tag>.
python3 -m pip install --no-build-isolation -q . -C cmake.define.LA_BUILD_TESTS=ON
build_dir=$(ls -d build/cp* | head -n 1)

echo "== GoogleTest =="
ctest --test-dir "$build_dir" --output-on-failure -j 2
# The same suite with the kernels capped at AVX2 (a CPU without AVX-512), and the plain C++ twins
# (all but the long greedy run, which the AVX2 pass already covers on the same code path).
echo "== GoogleTest, LA_ISA=avx2 =="
LA_ISA=avx2 "$build_dir/tests/la_tests" --gtest_brief=1
echo "== GoogleTest, LA_ISA=scalar =="
LA_ISA=scalar "$build_dir/tests/la_tests" --gtest_brief=1 --gtest_filter='-ModelParity.GreedyTokensAllModes'

echo "== pytest =="
python3 -m pytest -q pytests

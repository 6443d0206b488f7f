#!/usr/bin/env bash
# Sets up a fresh machine (system + Python packages), builds the module and the GoogleTest suite in
# one CMake configure, then runs GoogleTest (ctest) and pytest. Usage: bash tests/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install_deps.sh

# One build: pip builds the extension with the tests switched on, in build/<wheel tag>.
python3 -m pip install --no-build-isolation -q . -C cmake.define.LA_BUILD_TESTS=ON
build_dir=$(ls -d build/cp* | head -n 1)

echo "== layers: includes go only downwards (cpp/layers.txt) =="
python3 tests/check_layers.py
echo "== ruff and mypy on python/ (config in pyproject.toml) =="
python3 -m ruff check python
python3 -m mypy

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

# Reliability: the GoogleTest suite under AddressSanitizer + UndefinedBehaviorSanitizer (a separate
# build; any report fails the run), then a short libFuzzer run of each parser (tests/fuzz/run_fuzz.sh
# runs longer: bash tests/fuzz/run_fuzz.sh 600).
step_start=$SECONDS
echo "== GoogleTest under ASan+UBSan =="
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DLA_SANITIZE=ON -DLA_BUILD_PYTHON=OFF >/dev/null
cmake --build build-asan -j 2
echo "(sanitizer build: $((SECONDS - step_start)) s)"
mkdir -p build-asan/test_tmp
LA_TEST_TMP="$PWD/build-asan/test_tmp" ASAN_OPTIONS=detect_leaks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build-asan/tests/la_tests --gtest_brief=1
echo "(sanitizer build and run: $((SECONDS - step_start)) s)"

step_start=$SECONDS
echo "== fuzzing (25 s per target) =="
bash tests/fuzz/run_fuzz.sh 25
echo "(fuzz build and run: $((SECONDS - step_start)) s)"

#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz and runs each for N seconds (default 30) from
# its committed seed corpus. Usage: bash tests/fuzz/run_fuzz.sh [seconds] [target ...]
# (targets: safetensors tokenizer answer config; default all). New inputs go to
# build-fuzz/corpus/<target>, crashes to build-fuzz/artifacts/; exits non-zero if any target fails.
# Reproduce a crash: build-fuzz/tests/fuzz/fuzz_<target> build-fuzz/artifacts/<target>-crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors tokenizer answer config)

cxx=$(command -v clang++-14 || command -v clang++ || true)
cc=$(command -v clang-14 || command -v clang || true)
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "run_fuzz.sh: clang not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

build=build-fuzz
generator=(); command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DLA_FUZZ=ON -DLA_BUILD_TESTS=OFF -DLA_BUILD_PYTHON=OFF -DLA_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "${LA_JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
declare -A dict=([safetensors]=json.dict [config]=json.dict [answer]=answer.dict)
declare -A max_len=([safetensors]=8192 [config]=8192 [tokenizer]=4096 [answer]=4096)
mkdir -p "$build/artifacts"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]:-4096}"
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-")
  [ -n "${dict[$t]:-}" ] && args+=(-dict="tests/fuzz/${dict[$t]}")
  echo "== fuzz_$t: ${seconds}s =="
  if ! "$build/tests/fuzz/fuzz_$t" "${args[@]}" "$build/corpus/$t" "tests/fuzz/corpus/$t" \
        > "$build/fuzz_$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$build/fuzz_$t.log"
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$t.log" | tr '\n' ' '; echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $build/artifacts/, logs in $build/fuzz_*.log)" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${targets[*]}"

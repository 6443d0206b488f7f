// Peak-throughput and bandwidth loops; each accumulator is its own register chain, so no chain goes
// through memory and none can be merged with another.
#include "machine.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"

namespace la::bench {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double time_best(int reps, const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    fn();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

namespace {

int pool_threads() { return current_pool() ? current_pool()->size() : 1; }

// Runs fn once on every pool thread at the same time.
void on_every_thread(const std::function<void(int)>& fn) {
  const int n = pool_threads();
  if (current_pool()) current_pool()->run(n, [&](int64_t t) { fn(static_cast<int>(t)); });
  else fn(0);
}

__attribute__((target("avx2"))) uint64_t sum_words(const uint64_t* p, int64_t n) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
  const __m256i* v = reinterpret_cast<const __m256i*>(p);
  for (int64_t i = 0; i < n / 8; ++i) {
    acc0 = _mm256_add_epi64(acc0, _mm256_loadu_si256(v + 2 * i));
    acc1 = _mm256_add_epi64(acc1, _mm256_loadu_si256(v + 2 * i + 1));
  }
  uint64_t out[4];
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi64(acc0, acc1));
  return out[0] + out[1] + out[2] + out[3];
}

constexpr int64_t kPeakIters = 20'000'000;

// Independent chains, each started from its own value and hidden behind an empty asm so the
// compiler can neither merge identical chains (it did: twelve identical accumulators became one
// chain, and the "peak" was twelve times one instruction's latency) nor fold them. kChains covers
// latency × throughput of every core measured so far (4 cycles × 2 per cycle, with room).
constexpr int kChains = 16;

// The loop body of every peak: one instruction per chain per iteration (a macro, since a lambda
// would not inherit the function's target attribute).
#define LA_RUN_CHAINS(acc, expr)                                 \
  for (int64_t i = 0; i < kPeakIters; ++i) {                     \
    _Pragma("GCC unroll 16") for (int c = 0; c < kChains; ++c) { \
      const auto a = acc[c];                                     \
      acc[c] = (expr);                                           \
    }                                                            \
  }

__attribute__((target("avx512f,fma"))) float fma_loop_avx512() {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) {
    acc[c] = _mm512_set1_ps(0.1f + 0.01f * c);
    asm volatile("" : "+v"(acc[c]));
  }
  const __m512 m = _mm512_set1_ps(0.999f), k = _mm512_set1_ps(1e-6f);
  LA_RUN_CHAINS(acc, _mm512_fmadd_ps(a, m, k))
  float s = 0.0f;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]);
  return s;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2() {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) {
    acc[c] = _mm256_set1_ps(0.1f + 0.01f * c);
    asm volatile("" : "+v"(acc[c]));
  }
  const __m256 m = _mm256_set1_ps(0.999f), k = _mm256_set1_ps(1e-6f);
  LA_RUN_CHAINS(acc, _mm256_fmadd_ps(a, m, k))
  float out[8], s = 0.0f;
  for (int c = 0; c < kChains; ++c) {
    _mm256_storeu_ps(out, acc[c]);
    s += out[0];
  }
  return s;
}

__attribute__((target("avx512vnni,avx512f,avx512bw"))) int32_t dpbusd_loop() {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) {
    acc[c] = _mm512_set1_epi32(c);
    asm volatile("" : "+v"(acc[c]));
  }
  const __m512i x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(5);
  LA_RUN_CHAINS(acc, _mm512_dpbusd_epi32(a, x, w))
  int32_t s = 0;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_epi32(acc[c]);
  return s;
}

__attribute__((target("avx512bf16,avx512f,avx512bw"))) float dpbf16_loop() {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) {
    acc[c] = _mm512_set1_ps(0.1f * c);
    asm volatile("" : "+v"(acc[c]));
  }
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), w = (__m512bh)_mm512_set1_epi16(0x3c00);
  LA_RUN_CHAINS(acc, _mm512_dpbf16_ps(a, x, w))
  float s = 0.0f;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]);
  return s;
}


}  // namespace

double read_bandwidth_gbs() {
  std::vector<uint64_t> buf(size_t(1) << 27, 1);  // 1 GiB
  std::vector<uint64_t> sink(64, 0);
  const double t = time_best(5, [&] {
    parallel_for(static_cast<int64_t>(buf.size()), 1 << 16,
                 [&](int64_t b, int64_t e) { sink[(b * 7) % 64] += sum_words(buf.data() + b, e - b); });
  });
  return buf.size() * 8.0 / t / 1e9;
}

// Best of this many: on a shared VM one thread can lose its core for a while, and that only ever
// understates a peak (best of 3 once gave an int8 peak 20 % low inside a bench_e2e run).
constexpr int kPeakReps = 9;

double fp32_peak_gflops() {
  // Both widths where AVX-512 exists: some cores issue twice as many 256-bit FMAs as 512-bit ones.
  std::vector<float> sink(64, 0.0f);
  const double t8 = time_best(kPeakReps, [&] { on_every_thread([&](int th) { sink[th % 64] += fma_loop_avx2(); }); });
  double best = pool_threads() * kPeakIters * double(kChains) * 8 * 2 / t8 / 1e9;
  if (detected_isa() >= Isa::Avx512) {
    const double t16 = time_best(kPeakReps, [&] { on_every_thread([&](int th) { sink[th % 64] += fma_loop_avx512(); }); });
    best = std::max(best, pool_threads() * kPeakIters * double(kChains) * 16 * 2 / t16 / 1e9);
  }
  return best;
}

double bf16_peak_gflops() {
  if (detected_isa() < Isa::Avx512 || !__builtin_cpu_supports("avx512bf16")) return 0.0;
  std::vector<float> sink(64, 0.0f);
  const double t = time_best(kPeakReps, [&] { on_every_thread([&](int th) { sink[th % 64] += dpbf16_loop(); }); });
  return pool_threads() * kPeakIters * double(kChains) * 64 / t / 1e9;
}

double int8_peak_gops() {
  if (detected_isa() < Isa::Avx512Vnni) return 0.0;
  std::vector<int64_t> sink(64, 0);
  const double t = time_best(kPeakReps, [&] { on_every_thread([&](int th) { sink[th % 64] += dpbusd_loop(); }); });
  return pool_threads() * kPeakIters * double(kChains) * 128 / t / 1e9;
}

namespace {

// 8 vpdpbusd on zmm0–7 (independent chains) plus `extra` per iteration, n iterations, in inline asm
// so that the compiler can neither merge nor move anything; returns seconds.
#define LA_DP8                                                                                              \
  "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n vpdpbusd %%zmm30, %%zmm31, %%zmm1\n vpdpbusd %%zmm30, %%zmm31, %%zmm2\n" \
  "vpdpbusd %%zmm30, %%zmm31, %%zmm3\n vpdpbusd %%zmm30, %%zmm31, %%zmm4\n vpdpbusd %%zmm30, %%zmm31, %%zmm5\n" \
  "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n vpdpbusd %%zmm30, %%zmm31, %%zmm7\n"
#define LA_X4(op) op("16") op("17") op("18") op("19")
#define LA_ISSUE_LOOP(name, body)                                                                                \
  __attribute__((target("avx512vnni,avx512f,avx512bw"), noinline)) double name(long n) {                        \
    static int32_t mem[16] = {1, 2, 3, 4};                                                                       \
    const double t0 = now_s();                                                                                   \
    asm volatile("vpxord %%zmm28, %%zmm28, %%zmm28\n vpxord %%zmm29, %%zmm29, %%zmm29\n"                       \
                 "vpxord %%zmm30, %%zmm30, %%zmm30\n vpxord %%zmm31, %%zmm31, %%zmm31\n"                       \
                 "kxnorw %%k1, %%k1, %%k1\n"                                                                   \
                 "1:\n" LA_DP8 body "dec %0\n jnz 1b\n"                                                         \
                 : "+r"(n)                                                                                       \
                 : "r"(mem)                                                                                      \
                 : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm16",     \
                   "xmm17", "xmm18", "xmm19", "xmm28", "xmm29", "xmm30", "xmm31", "k1");                       \
    return now_s() - t0;                                                                                         \
  }
#define LA_FMA(r) "vfmadd231ps %%zmm29, %%zmm28, %%zmm" r "\n"
#define LA_MUL(r) "vmulps %%zmm29, %%zmm" r ", %%zmm" r "\n"
#define LA_CVT(r) "vcvtdq2ps %%zmm" r ", %%zmm" r "\n"
#define LA_ADDD(r) "vpaddd %%zmm29, %%zmm" r ", %%zmm" r "\n"
#define LA_ADDDZ(r) "vpaddd %%zmm29, %%zmm" r ", %%zmm" r "%{%%k1%}%{z%}\n"  // the Pow2 scale product
#define LA_ADDPS(r) "vaddps %%zmm29, %%zmm" r ", %%zmm" r "\n"
#define LA_BCAST(r) "vpbroadcastd (%1), %%zmm" r "\n"
#define LA_SHIFT(r) "vpsrlw $4, %%zmm" r ", %%zmm" r "\n"

LA_ISSUE_LOOP(issue_base, "")
LA_ISSUE_LOOP(issue_fma, LA_X4(LA_FMA))
LA_ISSUE_LOOP(issue_mul, LA_X4(LA_MUL))
LA_ISSUE_LOOP(issue_addps, LA_X4(LA_ADDPS))
LA_ISSUE_LOOP(issue_cvt, LA_X4(LA_CVT))
LA_ISSUE_LOOP(issue_addd, LA_X4(LA_ADDD))
LA_ISSUE_LOOP(issue_adddz, LA_X4(LA_ADDDZ))
LA_ISSUE_LOOP(issue_shift, LA_X4(LA_SHIFT))
LA_ISSUE_LOOP(issue_bcast, LA_X4(LA_BCAST))

std::vector<IssueCost> measure_issue_costs() {
  using Loop = double (*)(long);
  const Loop base = issue_base;
  const struct {
    const char* op;
    Loop loop;
  } cases[] = {{"vfmadd231ps", issue_fma}, {"vmulps", issue_mul},    {"vaddps", issue_addps},
               {"vcvtdq2ps", issue_cvt},   {"vpaddd", issue_addd},   {"vpaddd{k}{z}", issue_adddz},
               {"vpsrlw", issue_shift},    {"vpbroadcastd m32", issue_bcast}};
  const long n = 20000000;
  auto best = [&](Loop loop) {
    double t = 1e30;
    for (int r = 0; r < 3; ++r) t = std::min(t, loop(n));
    return t;
  };
  const double slot = best(base) / n / 8;  // seconds per vpdpbusd issue
  std::vector<IssueCost> out;
  for (const auto& c : cases) out.push_back({c.op, (best(c.loop) / n - 8 * slot) / 4 / slot});
  return out;
}

}  // namespace

std::vector<IssueCost> vnni_issue_costs() {
  if (detected_isa() < Isa::Avx512Vnni) return {};
  return measure_issue_costs();
}

double sgemm_gflops() {
  const int64_t M = 1024, N = 4608, K = 1152;
  std::vector<float> A(M * K, 0.01f), B(N * K, 0.02f), C(M * N);
  const double t = time_best(3, [&] { gemm_nt(A.data(), M, K, K, B.data(), N, K, nullptr, C.data(), N); });
  return 2.0 * M * N * K / t / 1e9;
}

}  // namespace la::bench

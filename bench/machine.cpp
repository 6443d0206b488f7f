// Peak-throughput and bandwidth loops; each accumulator is a named register so no chain goes
// through memory.
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

__attribute__((target("avx512f,fma"))) float fma_loop_avx512() {
  __m512 a0 = _mm512_set1_ps(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-6f);
  for (int64_t i = 0; i < kPeakIters; ++i) {
    a0 = _mm512_fmadd_ps(a0, m, c);
    a1 = _mm512_fmadd_ps(a1, m, c);
    a2 = _mm512_fmadd_ps(a2, m, c);
    a3 = _mm512_fmadd_ps(a3, m, c);
    a4 = _mm512_fmadd_ps(a4, m, c);
    a5 = _mm512_fmadd_ps(a5, m, c);
    a6 = _mm512_fmadd_ps(a6, m, c);
    a7 = _mm512_fmadd_ps(a7, m, c);
    a8 = _mm512_fmadd_ps(a8, m, c);
    a9 = _mm512_fmadd_ps(a9, m, c);
    a10 = _mm512_fmadd_ps(a10, m, c);
    a11 = _mm512_fmadd_ps(a11, m, c);
    asm volatile("" : "+v"(m));
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2() {
  __m256 a0 = _mm256_set1_ps(0.1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
         a9 = a0, a10 = a0, a11 = a0;
  __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-6f);
  for (int64_t i = 0; i < kPeakIters; ++i) {
    a0 = _mm256_fmadd_ps(a0, m, c);
    a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c);
    a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c);
    a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c);
    a10 = _mm256_fmadd_ps(a10, m, c);
    a11 = _mm256_fmadd_ps(a11, m, c);
    asm volatile("" : "+v"(m));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

__attribute__((target("avx512vnni,avx512f,avx512bw"))) int32_t dpbusd_loop() {
  __m512i a0 = _mm512_set1_epi32(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  __m512i a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  __m512i x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(5);
  for (int64_t i = 0; i < kPeakIters; ++i) {
    a0 = _mm512_dpbusd_epi32(a0, x, w);
    a1 = _mm512_dpbusd_epi32(a1, x, w);
    a2 = _mm512_dpbusd_epi32(a2, x, w);
    a3 = _mm512_dpbusd_epi32(a3, x, w);
    a4 = _mm512_dpbusd_epi32(a4, x, w);
    a5 = _mm512_dpbusd_epi32(a5, x, w);
    a6 = _mm512_dpbusd_epi32(a6, x, w);
    a7 = _mm512_dpbusd_epi32(a7, x, w);
    a8 = _mm512_dpbusd_epi32(a8, x, w);
    a9 = _mm512_dpbusd_epi32(a9, x, w);
    a10 = _mm512_dpbusd_epi32(a10, x, w);
    a11 = _mm512_dpbusd_epi32(a11, x, w);
    asm volatile("" : "+v"(x));
  }
  __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
                               _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
  s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(a8, a9), _mm512_add_epi32(a10, a11)));
  return _mm512_reduce_add_epi32(s);
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

double fp32_peak_gflops() {
  const bool avx512 = detected_isa() >= Isa::Avx512;
  std::vector<float> sink(64, 0.0f);
  const double t = time_best(3, [&] {
    on_every_thread([&](int th) { sink[th % 64] += avx512 ? fma_loop_avx512() : fma_loop_avx2(); });
  });
  return pool_threads() * kPeakIters * 12.0 * (avx512 ? 16 : 8) * 2 / t / 1e9;
}

double int8_peak_gops() {
  if (detected_isa() < Isa::Avx512Vnni) return 0.0;
  std::vector<int64_t> sink(64, 0);
  const double t = time_best(3, [&] { on_every_thread([&](int th) { sink[th % 64] += dpbusd_loop(); }); });
  return pool_threads() * kPeakIters * 12.0 * 128 / t / 1e9;
}

double sgemm_gflops() {
  const int64_t M = 1024, N = 4608, K = 1152;
  std::vector<float> A(M * K, 0.01f), B(N * K, 0.02f), C(M * N);
  const double t = time_best(3, [&] { gemm_nt(A.data(), M, K, K, B.data(), N, K, nullptr, C.data(), N); });
  return 2.0 * M * N * K / t / 1e9;
}

}  // namespace la::bench

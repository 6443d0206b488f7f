// Machine probe: memory read bandwidth, peak float32 FMA and int8 VNNI throughput, and OpenBLAS
// sgemm, each with 1 and all threads. Prints JSON; the benchmarks divide by these limits.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Runs fn(thread) on `threads` threads at once; returns the wall time of the slowest.
template <typename Fn>
double timed_parallel(int threads, Fn fn) {
  std::vector<std::thread> ts;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  double start = 0;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ready++;
      while (!go.load()) {
      }
      fn(t);
    });
  while (ready.load() < threads) {
  }
  start = now();
  go = true;
  for (auto& t : ts) t.join();
  return now() - start;
}

// Sums a large buffer with 512-bit loads: the read bandwidth the decoder's weight streaming sees.
__attribute__((target("avx512f"))) void read_kernel(const float* p, size_t n, float* sink) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
  }
  _mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

double read_bandwidth(int threads, size_t bytes_per_thread, int reps) {
  std::vector<std::vector<float>> bufs(threads, std::vector<float>(bytes_per_thread / 4, 1.0f));
  std::vector<float> sink(threads * 16);
  double best = 1e30;
  for (int r = 0; r < reps; ++r)
    best = std::min(best, timed_parallel(threads, [&](int th) {
                      read_kernel(bufs[th].data(), bufs[th].size(), &sink[th * 16]);
                    }));
  return static_cast<double>(bytes_per_thread) * threads / best / 1e9;
}

constexpr long kPeakIters = 20'000'000;

// Independent FMA chains: 2 ports × 16 lanes × 2 flops per cycle on AVX-512 machines.
__attribute__((target("avx512f,fma"))) void fma_kernel(float* sink) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 m = _mm512_set1_ps(0.9999f), a = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < kPeakIters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, a);
  __m512 s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_ps(s, acc[j]);
  _mm512_storeu_ps(sink, s);
}

// Independent vpdpbusd chains: 64 int8 multiply-adds (128 ops) per instruction.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_kernel(int* sink) {
  __m512i acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (long i = 0; i < kPeakIters; ++i)
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  __m512i s = acc[0];
  for (int j = 1; j < 12; ++j) s = _mm512_add_epi32(s, acc[j]);
  _mm512_storeu_si512(sink, s);
}

double fma_peak(int threads) {
  std::vector<float> sink(threads * 16);
  double t = timed_parallel(threads, [&](int th) { fma_kernel(&sink[th * 16]); });
  return static_cast<double>(kPeakIters) * 12 * 16 * 2 * threads / t / 1e9;
}

double vnni_peak(int threads) {
  std::vector<int> sink(threads * 16);
  double t = timed_parallel(threads, [&](int th) { vnni_kernel(&sink[th * 16]); });
  return static_cast<double>(kPeakIters) * 12 * 64 * 2 * threads / t / 1e9;
}

double sgemm_rate(int threads, int64_t M, int64_t N, int64_t K) {
  std::vector<float> A(M * K, 0.01f), B(N * K, 0.02f), C(M * N);
  la::ThreadPool pool(threads);
  la::PoolScope scope(&pool);
  la::gemm_nt(A.data(), M, K, K, B.data(), N, K, nullptr, C.data(), N);  // warm up
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    double s = now();
    la::gemm_nt(A.data(), M, K, K, B.data(), N, K, nullptr, C.data(), N);
    best = std::min(best, now() - s);
  }
  return 2.0 * M * N * K / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int all = la::ThreadPool::hardware_threads();
  const bool avx512 = la::detected_isa() >= la::Isa::Avx512;
  const bool vnni = la::detected_isa() >= la::Isa::Avx512Vnni;
  std::string out = "{\n";
  char line[256];
  std::snprintf(line, sizeof line, "  \"hardware_threads\": %d,\n  \"isa\": \"%s\",\n", all,
                la::isa_name(la::detected_isa()));
  out += line;
  for (int threads : {1, all}) {
    const double bw = avx512 ? read_bandwidth(threads, size_t(256) << 20, 3) : 0.0;
    const double fma = avx512 ? fma_peak(threads) : 0.0;
    const double dot = vnni ? vnni_peak(threads) : 0.0;
    const double blas = sgemm_rate(threads, 1024, 4608, 1152);
    std::snprintf(line, sizeof line,
                  "  \"threads_%d\": {\"read_GBps\": %.2f, \"fp32_peak_GFLOPs\": %.1f, \"int8_peak_GOPs\": %.1f, "
                  "\"sgemm_GFLOPs\": %.1f}%s\n",
                  threads, bw, fma, dot, blas, threads == all ? "" : ",");
    out += line;
    if (all == 1) break;
  }
  out += "}\n";
  std::fputs(out.c_str(), stdout);
  if (argc > 1) {
    FILE* f = std::fopen(argv[1], "w");
    if (f) {
      std::fputs(out.c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}

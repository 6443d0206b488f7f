// Measured limits of this machine for the current thread pool: read bandwidth, float32 FMA and int8
// VNNI peaks, and what OpenBLAS sgemm reaches. Shared by the probe and the kernel benchmarks.
#pragma once

#include <functional>
#include <vector>

namespace la::bench {

double now_s();                                             // steady clock, seconds
double time_best(int reps, const std::function<void()>& fn);  // best of reps runs after one warm-up

double read_bandwidth_gbs();  // sum over a 1 GiB buffer, split over the pool (GB/s)
double fp32_peak_gflops();     // independent AVX-512 (or AVX2) FMA chains on every pool thread
double int8_peak_gops();       // independent vpdpbusd chains (0 without AVX-512 VNNI)
double bf16_peak_gflops();     // independent vdpbf16ps chains (0 without AVX-512 BF16)
double sgemm_gflops();         // gemm_nt on a vision-sized problem (1024 × 4608 × 1152)

// What the block-scale epilogue of the quantised GEMM costs next to its vpdpbusd: for each kind of
// 512-bit operation, the cycles (in units of one vpdpbusd's issue slot) that 4 of them add to a loop
// of 8 independent vpdpbusd on one thread. ~0 means the operation runs on another port; ~1 per
// operation means it takes the vpdpbusd's slot. Empty without AVX-512 VNNI.
struct IssueCost {
  const char* op;
  double slots_per_op;
};
std::vector<IssueCost> vnni_issue_costs();

}  // namespace la::bench

// Micro-benchmark of the quantised linear kernels against this machine's measured memory bandwidth
// and int8 VNNI peak; prints one table.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "machine.h"

namespace la {
namespace {

using bench::now_s;
using bench::time_best;

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = g(rng);
  return v;
}

// `copies` independent quantised copies of an [N, K] matrix, cycled so the weights come from DRAM.
struct WeightSet {
  int64_t N, K, bytes;
  QuantFormat fmt;
  std::vector<std::vector<uint8_t>> copies;
  WeightSet(int64_t n, int64_t k, QuantFormat f, int64_t min_total_bytes) : N(n), K(k), fmt(f) {
    bytes = quant_matrix_bytes(fmt, N, K);
    const std::vector<float> w = random_floats(N * K, 1);
    std::vector<uint8_t> q(bytes);
    quantise_weights(w.data(), N, K, K, fmt, q.data());
    const int64_t n_copies = std::max<int64_t>(2, min_total_bytes / bytes + 1);
    copies.assign(n_copies, q);
  }
};

// Timings of one configuration: median and best seconds per call.
struct Timing {
  double median, best;
};

// One quant_linear call per M in `Ms`, round-robin for `rounds` rounds, each on the next weight copy,
// so every M sees the same background noise (the machine is shared).
std::vector<Timing> time_linear(const WeightSet& ws, const std::vector<int64_t>& Ms, int rounds) {
  std::vector<std::vector<BlockQ8A>> xq(Ms.size());
  int64_t max_m = 0;
  for (size_t i = 0; i < Ms.size(); ++i) {
    const std::vector<float> x = random_floats(Ms[i] * ws.K, 2);
    xq[i].resize(Ms[i] * ws.K / 32);
    quantise_activations(x.data(), Ms[i], ws.K, ws.K, activation_scale_for(ws.fmt), xq[i].data());
    max_m = std::max(max_m, Ms[i]);
  }
  std::vector<float> y(max_m * ws.N);
  size_t next = 0;
  auto call = [&](size_t i) {
    quant_linear(xq[i].data(), Ms[i], ws.K, ws.copies[next].data(), ws.fmt, ws.N, nullptr, y.data(), ws.N);
    next = (next + 1) % ws.copies.size();
  };
  for (size_t c = 0; c < ws.copies.size(); ++c) call(0);  // warm-up: page in every copy
  std::vector<std::vector<double>> times(Ms.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < Ms.size(); ++i) {
      const double t0 = now_s();
      call(i);
      times[i].push_back(now_s() - t0);
    }
  std::vector<Timing> out;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    out.push_back({t[t.size() / 2], t[0]});
  }
  return out;
}

// This machine's limits by thread count, measured before any section that reports against them (a
// ratio to a remembered constant would be wrong on the next machine).
struct Machine {
  double read_gbs[3] = {0, 0, 0};
  double peak_gops[3] = {0, 0, 0};
};

void measure_machine(Machine& mc) {
  for (int th = 1; th <= 2; ++th) {
    ThreadPool pool(th);
    PoolScope scope(&pool);
    mc.read_gbs[th] = bench::read_bandwidth_gbs();
    mc.peak_gops[th] = bench::int8_peak_gops();
  }
}

void print_machine(const Machine& mc) {
  std::printf("\n%-34s %9s %9s\n", "machine", "1 thread", "2 threads");
  std::printf("%-34s %9.1f %9.1f\n", "read GB/s", mc.read_gbs[1], mc.read_gbs[2]);
  std::printf("%-34s %9.0f %9.0f\n", "vpdpbusd zmm peak GOP/s", mc.peak_gops[1], mc.peak_gops[2]);
}

void bench_gemv(const Machine& mc) {
  std::printf("\n%-34s %7s %9s %9s %8s %8s %8s\n", "GEMV, Q4_32 weights from DRAM", "threads", "median ms",
              "best ms", "GB/s", "% read", "x M=1");
  for (auto [N, K] : {std::pair<int64_t, int64_t>{11008, 2048}, {2048, 11008}}) {
    const WeightSet ws(N, K, QuantFormat::Q4_32, 1536ll << 20);  // copies well beyond any L3
    for (int th = 1; th <= 2; ++th) {
      ThreadPool pool(th);
      PoolScope scope(&pool);
      const std::vector<int64_t> Ms = {1, 6, 12};
      const std::vector<Timing> t = time_linear(ws, Ms, 60);
      for (size_t i = 0; i < Ms.size(); ++i) {
        char label[64];
        std::snprintf(label, sizeof label, "[%lld, %lld] M=%lld", static_cast<long long>(N), static_cast<long long>(K),
                      static_cast<long long>(Ms[i]));
        const double gbs = ws.bytes / t[i].median / 1e9;
        std::printf("%-34s %7d %9.3f %9.3f %8.1f %8.0f %8.2f\n", label, th, t[i].median * 1e3, t[i].best * 1e3, gbs,
                    mc.read_gbs[th] > 0 ? 100.0 * gbs / mc.read_gbs[th] : 0.0, t[i].median / t[0].median);
      }
    }
  }
}

void bench_gemm(const Machine& mc) {
  std::printf("\n%-34s %7s %9s %9s %8s %8s\n", "GEMM, weights cached (7 runs)", "threads", "median ms", "best ms",
              "GOP/s", "% peak");
  using Case = std::tuple<QuantFormat, int64_t, int64_t, int64_t>;
  const Case cases[] = {{QuantFormat::Q4_32, 11008, 2048, 350},
                        {QuantFormat::Q4_32, 2048, 11008, 350},
                        {QuantFormat::Q4_128, 11008, 2048, 350},
                        {QuantFormat::Q8_32, 11008, 2048, 350}};
  for (auto [fmt, N, K, M] : cases) {
    const WeightSet ws(N, K, fmt, 0);
    for (int th = 1; th <= 2; ++th) {
      ThreadPool pool(th);
      PoolScope scope(&pool);
      const Timing t = time_linear(ws, {M}, 7)[0];
      const double gops = 2.0 * M * N * K / t.median / 1e9;
      char label[64];
      std::snprintf(label, sizeof label, "%s [%lld, %lld] M=%lld", quant_format_name(fmt), static_cast<long long>(N),
                    static_cast<long long>(K), static_cast<long long>(M));
      std::printf("%-34s %7d %9.2f %9.2f %8.0f %8.0f\n", label, th, t.median * 1e3, t.best * 1e3, gops,
                  mc.peak_gops[th] > 0 ? 100 * gops / mc.peak_gops[th] : 0.0);
    }
  }
}

void bench_ports() {
  const std::vector<bench::IssueCost> costs = bench::vnni_issue_costs();
  if (costs.empty()) {
    std::printf("\nports: no AVX-512 VNNI on this CPU\n");
    return;
  }
  std::printf("\n%-34s %s\n", "beside vpdpbusd (1 thread)", "vpdpbusd slots per op (0: another port)");
  for (const bench::IssueCost& c : costs) std::printf("%-34s %9.2f\n", c.op, c.slots_per_op);
}

void bench_quantise() {
  const int64_t M = 350, K = 11008;
  const std::vector<float> x = random_floats(M * K, 3);
  std::vector<BlockQ8A> xq(M * K / 32);
  ThreadPool pool(2);
  PoolScope scope(&pool);
  const double t = time_best(5, [&] { quantise_activations(x.data(), M, K, K, ActScale::Pow2, xq.data()); });
  std::printf("\n%-34s %7d %9s %9.3f\n", "quantise_activations [350, 11008]", 2, "", t * 1e3);
}

}  // namespace
}  // namespace la

int main(int argc, char** argv) {
  using namespace la;
  // Optional section names (mem gemv gemm quant ports) pick what runs; default: everything.
  auto want = [&](const char* name) {
    if (argc < 2) return true;
    for (int i = 1; i < argc; ++i)
      if (!std::strcmp(argv[i], name)) return true;
    return false;
  };
  std::printf("ISA: %s (detected %s), hardware threads %d\n", isa_name(active_isa()), isa_name(detected_isa()),
              ThreadPool::hardware_threads());
  Machine mc;
  if (want("mem") || want("gemv") || want("gemm")) measure_machine(mc);
  if (want("mem")) print_machine(mc);
  if (want("gemv")) bench_gemv(mc);
  if (want("gemm")) bench_gemm(mc);
  if (want("quant")) bench_quantise();
  if (want("ports")) bench_ports();
  return 0;
}

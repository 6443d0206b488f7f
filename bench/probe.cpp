// Machine probe: memory read bandwidth, peak float32 FMA, int8 VNNI and bf16 dot throughput, and OpenBLAS
// sgemm, with 1 and all threads, as JSON (stdout, and the file named by argv[1] if given). The
// end-to-end benchmark divides its stage times by these limits.
#include <cstdio>
#include <string>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "machine.h"

int main(int argc, char** argv) {
  const int all = la::ThreadPool::hardware_threads();
  std::string out = "{\n";
  char line[512];
  std::snprintf(line, sizeof line, "  \"hardware_threads\": %d,\n  \"isa\": \"%s\",\n", all,
                la::isa_name(la::detected_isa()));
  out += line;
  for (int threads : {1, all}) {
    la::ThreadPool pool(threads);
    la::PoolScope scope(&pool);
    std::snprintf(line, sizeof line,
                  "  \"threads_%d\": {\"read_GBps\": %.2f, \"fp32_peak_GFLOPs\": %.1f, \"int8_peak_GOPs\": %.1f, "
                  "\"bf16_peak_GFLOPs\": %.1f, \"sgemm_GFLOPs\": %.1f}%s\n",
                  threads, la::bench::read_bandwidth_gbs(), la::bench::fp32_peak_gflops(), la::bench::int8_peak_gops(),
                  la::bench::bf16_peak_gflops(), la::bench::sgemm_gflops(), threads == all || all == 1 ? "" : ",");
    out += line;
    if (all == 1) break;
  }
  out += "}\n";
  std::fputs(out.c_str(), stdout);
  if (argc > 1) {
    if (FILE* f = std::fopen(argv[1], "w")) {
      std::fputs(out.c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}

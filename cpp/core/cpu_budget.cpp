// Reads the CPU budget of this process: sched_getaffinity, the cgroup v2 cpu.max of its cgroup and
// its parents (or cgroup v1's cfs quota), and the thread-count environment variables.
#include "core/cpu_budget.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace la {

namespace {

std::optional<int> positive_int(const char* text) {
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*end != '\0' || v <= 0 || v > 4096) return std::nullopt;
  return static_cast<int>(v);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// The smallest quota on the way from this process's cgroup up to the root (v2), or v1's cfs quota.
std::optional<double> cgroup_cpus() {
  std::optional<double> best;
  auto take = [&](std::optional<double> q) {
    if (q && (!best || *q < *best)) best = q;
  };
  std::istringstream lines(read_file("/proc/self/cgroup"));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("0::", 0) == 0) {
      std::string path = line.substr(3);
      for (;;) {
        take(parse_cpu_max(read_file("/sys/fs/cgroup" + path + "/cpu.max")));
        if (path.empty() || path == "/") break;
        const size_t slash = path.find_last_of('/');
        path = slash == std::string::npos ? "" : path.substr(0, slash);
      }
    }
  }
  const std::string quota = read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const std::string period = read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  if (!quota.empty() && !period.empty()) {
    const double q = std::atof(quota.c_str()), p = std::atof(period.c_str());
    if (q > 0 && p > 0) take(q / p);
  }
  return best;
}

}  // namespace

std::optional<double> parse_cpu_max(const std::string& text) {
  std::istringstream in(text);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (*end != '\0' || q <= 0) return std::nullopt;
  return q / period;
}

ThreadBudget thread_budget(int affinity, std::optional<double> cgroup, const char* la_threads, const char* omp_threads) {
  ThreadBudget b;
  b.threads = std::max(1, affinity);
  b.source = "affinity mask (" + std::to_string(b.threads) + " CPUs)";
  if (cgroup) {
    const int quota = std::max(1, static_cast<int>(std::ceil(*cgroup - 1e-9)));
    if (quota < b.threads) {
      std::ostringstream s;
      s << "cgroup CPU quota (" << *cgroup << " CPUs)";
      b.threads = quota;
      b.source = s.str();
    }
  }
  for (auto [name, value] : {std::pair{"LOCATEANYTHING_THREADS", la_threads}, std::pair{"OMP_NUM_THREADS", omp_threads}}) {
    if (const auto n = positive_int(value)) {
      if (*n < b.threads) {
        b.threads = *n;
        b.source = std::string(name) + "=" + value;
      }
      break;  // LOCATEANYTHING_THREADS, when set, is the one that counts
    }
  }
  return b;
}

ThreadBudget default_thread_budget() {
  return thread_budget(affinity_cpus(), cgroup_cpus(), std::getenv("LOCATEANYTHING_THREADS"),
                       std::getenv("OMP_NUM_THREADS"));
}

}  // namespace la

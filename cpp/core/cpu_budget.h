// How many threads this process should run by default: the CPUs it may use (affinity mask, cgroup
// CPU quota), capped by LOCATEANYTHING_THREADS or OMP_NUM_THREADS when set.
#pragma once

#include <optional>
#include <string>

namespace la {

struct ThreadBudget {
  int threads = 1;
  std::string source;  // what decided it, e.g. "affinity mask (2 CPUs)" or "OMP_NUM_THREADS=1"
};

// The decision from its inputs (testable): `affinity` CPUs in the mask, an optional cgroup quota in
// CPUs (rounded up), and the two environment variables' texts (null when unset; a value that is not a
// positive integer is ignored).
ThreadBudget thread_budget(int affinity, std::optional<double> cgroup_cpus, const char* la_threads,
                           const char* omp_threads);

// "max 100000" → none; "150000 100000" → 1.5 (the cgroup v2 cpu.max format).
std::optional<double> parse_cpu_max(const std::string& text);

// The budget of this process, read from the OS and the environment.
ThreadBudget default_thread_budget();

}  // namespace la

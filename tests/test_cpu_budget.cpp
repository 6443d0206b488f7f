// The default thread count: affinity mask, cgroup quota and environment caps.
#include <gtest/gtest.h>

#include "core/cpu.h"
#include "core/cpu_budget.h"

namespace la {
namespace {

TEST(CpuBudget, ParsesCgroupV2CpuMax) {
  EXPECT_FALSE(parse_cpu_max("max 100000\n").has_value());
  EXPECT_DOUBLE_EQ(*parse_cpu_max("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*parse_cpu_max("200000 100000"), 2.0);
  EXPECT_FALSE(parse_cpu_max("").has_value());
  EXPECT_FALSE(parse_cpu_max("garbage").has_value());
  EXPECT_FALSE(parse_cpu_max("-1 100000").has_value());
}

TEST(CpuBudget, TakesTheSmallestLimitAndSaysWhich) {
  ThreadBudget b = thread_budget(8, std::nullopt, nullptr, nullptr);
  EXPECT_EQ(b.threads, 8);
  EXPECT_EQ(b.source, "affinity mask (8 CPUs)");
  b = thread_budget(8, 1.5, nullptr, nullptr);  // a quota of 1.5 CPUs rounds up to 2 threads
  EXPECT_EQ(b.threads, 2);
  EXPECT_NE(b.source.find("cgroup"), std::string::npos);
  b = thread_budget(2, 4.0, nullptr, nullptr);  // a quota above the mask changes nothing
  EXPECT_EQ(b.threads, 2);
  b = thread_budget(8, 4.0, nullptr, "1");
  EXPECT_EQ(b.threads, 1);
  EXPECT_EQ(b.source, "OMP_NUM_THREADS=1");
  b = thread_budget(8, std::nullopt, "3", "1");  // LOCATEANYTHING_THREADS wins over OMP_NUM_THREADS
  EXPECT_EQ(b.threads, 3);
  EXPECT_EQ(b.source, "LOCATEANYTHING_THREADS=3");
  b = thread_budget(2, std::nullopt, "16", nullptr);  // a cap, not a raise
  EXPECT_EQ(b.threads, 2);
  b = thread_budget(4, std::nullopt, "zero", "0");  // not positive integers: ignored
  EXPECT_EQ(b.threads, 4);
  EXPECT_GE(default_thread_budget().threads, 1);
}

TEST(CpuIsa, OnePickForEveryKernelFamily) {
  // The widest variant the cap and the CPU both allow; the scalar twin otherwise.
  auto pick = [](Isa cap) {
    return pick_isa<int>(cap, {{Isa::Avx512Vnni, 3}, {Isa::Avx512, 2}, {Isa::Avx2, 1}, {Isa::Scalar, 0}});
  };
  EXPECT_EQ(pick(Isa::Scalar), 0);
  EXPECT_EQ(pick(Isa::Avx2), detected_isa() >= Isa::Avx2 ? 1 : 0);
  EXPECT_EQ(pick(Isa::Avx512Vnni), static_cast<int>(detected_isa()));
  // Families without a VNNI table take their AVX-512 one on a VNNI cap.
  EXPECT_EQ(pick_isa<int>(Isa::Avx512Vnni, {{Isa::Avx512, 2}, {Isa::Scalar, 0}}), detected_isa() >= Isa::Avx512 ? 2 : 0);
}

}  // namespace
}  // namespace la

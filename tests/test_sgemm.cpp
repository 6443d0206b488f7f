// Our float32 GEMM: the AVX-512 kernel equals its scalar twin bit for bit (same fma chain per
// element), for float32 and bfloat16 B, odd shapes, bias or none, column sub-ranges.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "kernels/sgemm.h"

namespace la {
namespace {

TEST(Sgemm, Avx512EqualsScalarTwin) {
  if (detected_isa() < Isa::Avx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {13, 33, 7}, {12, 32, 256}, {25, 70, 300},
                         {30, 300, 513}, {5, 17, 1000}}) {
    std::vector<float> A(M * (K + 3)), Bf(N * (K + 1)), bias(N);
    std::vector<uint16_t> Bh(N * (K + 1));
    for (auto& v : A) v = nd(rng);
    for (size_t i = 0; i < Bf.size(); ++i) {
      Bh[i] = f32_to_bf16(nd(rng));
      Bf[i] = nd(rng);
    }
    for (auto& v : bias) v = nd(rng);
    for (bool bf16 : {false, true})
      for (bool with_bias : {false, true}) {
        const void* B = bf16 ? static_cast<const void*>(Bh.data()) : Bf.data();
        std::vector<float> ref(M * (N + 2), -7.0f), got(M * (N + 2), -7.0f);
        const int64_t n0 = N > 3 ? 2 : 0;  // a column sub-range, as the pool splits it
        sgemm_kernel_scalar()(A.data(), M, K, K + 3, B, bf16, K + 1, with_bias ? bias.data() : nullptr, ref.data(),
                              N + 2, n0, N);
        sgemm_kernel_avx512()(A.data(), M, K, K + 3, B, bf16, K + 1, with_bias ? bias.data() : nullptr, got.data(),
                              N + 2, n0, N);
        for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << M << "x" << N << "x" << K << " i=" << i;
      }
  }
}

}  // namespace
}  // namespace la

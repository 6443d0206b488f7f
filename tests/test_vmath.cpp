// Vectorised math: AVX2 / AVX-512 equal the scalar twin bit for bit; accuracy against libm.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/vmath.h"

namespace la {
namespace {

std::vector<const VmathKernels*> available() {
  std::vector<const VmathKernels*> out = {&vmath_kernels_scalar()};
  if (detected_isa() >= Isa::Avx2) out.push_back(&vmath_kernels_avx2());
  if (detected_isa() >= Isa::Avx512) out.push_back(&vmath_kernels_avx512());
  return out;
}

std::vector<float> inputs(int64_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (auto& v : x) v = u(rng);
  return x;
}

TEST(Vmath, TwinsAreBitIdentical) {
  for (int64_t n : {1, 7, 15, 16, 17, 33, 1000}) {
    std::vector<float> x = inputs(n, -100.0f, 90.0f, static_cast<uint32_t>(n));
    x[0] = -std::numeric_limits<float>::max();  // a removed logit
    std::vector<float> g = inputs(n, -20.0f, 20.0f, 99), u = inputs(n, -3.0f, 3.0f, 98);
    const VmathKernels& ref = vmath_kernels_scalar();
    std::vector<float> ye(n), gelu = g, silu(n);
    const float se = ref.exp_sum(x.data(), 1.5f, ye.data(), n);
    ref.gelu_tanh(gelu.data(), n);
    ref.silu_mul(g.data(), u.data(), silu.data(), n);
    for (const VmathKernels* k : available()) {
      std::vector<float> y2(n), gelu2 = g, silu2(n);
      EXPECT_EQ(k->exp_sum(x.data(), 1.5f, y2.data(), n), se) << n;
      k->gelu_tanh(gelu2.data(), n);
      k->silu_mul(g.data(), u.data(), silu2.data(), n);
      EXPECT_EQ(k->max(x.data(), n), ref.max(x.data(), n));
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(y2[i], ye[i]) << i;
        ASSERT_EQ(gelu2[i], gelu[i]) << i;
        ASSERT_EQ(silu2[i], silu[i]) << i;
      }
    }
  }
}

TEST(Vmath, ExpAccuracyAndLimits) {
  // The Cody–Waite split and the degree-6 polynomial keep the error within a few ulp of float32
  // over the whole range that does not flush to zero.
  double worst = 0;
  for (float x : inputs(200000, -86.0f, 87.9f, 5)) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 4 * std::ldexp(1.0, -24));
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  EXPECT_EQ(exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(exp_approx(-std::numeric_limits<float>::max()), 0.0f);
  EXPECT_EQ(exp_approx(-90.0f), 0.0f);
  EXPECT_TRUE(std::isfinite(exp_approx(1000.0f)));
}

TEST(Vmath, ActivationsMatchTheirDefinitions) {
  std::vector<float> g = inputs(5000, -12.0f, 12.0f, 3), u = inputs(5000, -2.0f, 2.0f, 4);
  std::vector<float> gelu = g, silu(g.size());
  vmath().gelu_tanh(gelu.data(), static_cast<int64_t>(gelu.size()));
  vmath().silu_mul(g.data(), u.data(), silu.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const double v = g[i];
    const double gref = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    const double sref = v / (1 + std::exp(-v)) * u[i];
    // tanh through 1 − 2/(e^{2u}+1) loses relative accuracy only where gelu is tiny: bound it in
    // absolute terms relative to |x|.
    EXPECT_NEAR(gelu[i], gref, 1e-6 * (1 + std::fabs(v)));
    EXPECT_NEAR(silu[i], sref, 1e-6 * (1 + std::fabs(sref)));
  }
}

}  // namespace
}  // namespace la

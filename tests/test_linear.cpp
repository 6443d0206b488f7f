// Linear kernels: the scalar twin and the AVX2 / AVX-512 variants agree bit for bit, match a double
// reference within float32 rounding, and are batch-invariant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/linear.h"

namespace la {
namespace {

struct Problem {
  int64_t M, K, N;
  std::vector<float> x, wf, bias;
  std::vector<uint16_t> wb;
};

Problem make(int64_t M, int64_t K, int64_t N, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Problem p{M, K, N, {}, {}, {}, {}};
  p.x.resize(M * K);
  p.wf.resize(N * K);
  p.wb.resize(N * K);
  p.bias.resize(N);
  for (auto& v : p.x) v = nd(rng);
  for (size_t i = 0; i < p.wf.size(); ++i) {
    p.wb[i] = f32_to_bf16(nd(rng) * 0.1f);
    p.wf[i] = bf16_to_f32(p.wb[i]) * 1.001f;
  }
  for (auto& v : p.bias) v = nd(rng);
  return p;
}

std::vector<float> run(const LinearKernels& kt, const Problem& p, bool bf16) {
  std::vector<float> y(p.M * p.N);
  (bf16 ? kt.bf16 : kt.f32)(p.x.data(), p.M, p.K, p.K, bf16 ? static_cast<const void*>(p.wb.data()) : p.wf.data(),
                            p.bias.data(), y.data(), p.N, 0, p.N);
  return y;
}

std::vector<const LinearKernels*> available() {
  std::vector<const LinearKernels*> out = {&linear_kernels_scalar()};
  if (detected_isa() >= Isa::Avx2) out.push_back(&linear_kernels_avx2());
  if (detected_isa() >= Isa::Avx512) out.push_back(&linear_kernels_avx512());
  return out;
}

TEST(Linear, SimdVariantsEqualScalarTwinBitForBit) {
  for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 64, 33}, {3, 100, 17}, {5, 7, 9}, {8, 257, 70},
                         {13, 1, 5}, {2, 16, 4}, {6, 48, 12}}) {
    Problem p = make(M, K, N, static_cast<uint32_t>(M * 1000 + K));
    for (bool bf16 : {false, true}) {
      const std::vector<float> ref = run(linear_kernels_scalar(), p, bf16);
      for (const LinearKernels* kt : available()) {
        const std::vector<float> got = run(*kt, p, bf16);
        for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << M << "x" << K << "x" << N << " i=" << i;
      }
    }
  }
}

// A tile's weight rows lie range/S apart (S = 4, or 8 for one row of x beyond 16 KB; AVX2: 4 or 2), the
// rows left over as adjacent tiles: every split of the rows, with and without K tails and bias, for one
// and several rows of x, gives the scalar twin's bits.
TEST(Linear, SpreadTilesEqualScalarTwin) {
  for (int64_t M : {1, 3, 6, 10}) {
    for (auto [K, N] : {std::pair<int64_t, int64_t>{64, 37}, {100, 8}, {2048, 45}, {4096, 16}, {4100, 61}, {4113, 9}}) {
      Problem p = make(M, K, N, static_cast<uint32_t>(M + K + N));
      for (bool bf16 : {false, true}) {
        const void* w = bf16 ? static_cast<const void*>(p.wb.data()) : p.wf.data();
        for (const float* bias : {static_cast<const float*>(p.bias.data()), static_cast<const float*>(nullptr)}) {
          std::vector<float> ref(M * N);
          (bf16 ? linear_kernels_scalar().bf16 : linear_kernels_scalar().f32)(p.x.data(), M, K, K, w, bias, ref.data(),
                                                                                N, 0, N);
          for (const LinearKernels* kt : available()) {
            for (int64_t split : {int64_t{0}, int64_t{1}, N / 3, N - 1}) {
              std::vector<float> y(M * N, -1.0f);
              (bf16 ? kt->bf16 : kt->f32)(p.x.data(), M, K, K, w, bias, y.data(), N, 0, split);
              (bf16 ? kt->bf16 : kt->f32)(p.x.data(), M, K, K, w, bias, y.data(), N, split, N);
              for (int64_t i = 0; i < M * N; ++i)
                ASSERT_EQ(y[i], ref[i]) << "M=" << M << " K=" << K << " N=" << N << " split=" << split << " i=" << i
                                        << (bias ? " bias" : "") << (bf16 ? " bf16" : " f32");
            }
          }
        }
      }
    }
  }
}

TEST(Linear, MatchesDoubleReference) {
  Problem p = make(4, 2048, 64, 7);
  const std::vector<float> y = run(linear_kernels(active_isa()), p, true);
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N; ++n) {
      double ref = p.bias[n], mag = std::fabs(p.bias[n]);
      for (int64_t k = 0; k < p.K; ++k) {
        const double t = static_cast<double>(p.x[m * p.K + k]) * bf16_to_f32(p.wb[n * p.K + k]);
        ref += t;
        mag += std::fabs(t);
      }
      // Float32 summation error is bounded by ~K/16 + 4 roundings of the magnitude sum (16 lanes of
      // K/16 terms, then a 4-level tree): (K/16 + 5)·2^-24·Σ|terms|.
      const double bound = (p.K / 16.0 + 5.0) * std::ldexp(1.0, -24) * mag;
      EXPECT_NEAR(y[m * p.N + n], ref, bound);
    }
}

TEST(Linear, BatchInvariant) {
  Problem p = make(37, 300, 29, 11);
  ThreadPool pool(2);
  PoolScope scope(&pool);
  for (bool bf16 : {false, true}) {
    std::vector<float> all(p.M * p.N);
    linear(p.x.data(), p.M, p.K, bf16 ? static_cast<const void*>(p.wb.data()) : p.wf.data(),
           bf16 ? WeightFormat::BF16 : WeightFormat::F32, p.N, p.bias.data(), all.data());
    for (int64_t m = 0; m < p.M; ++m) {
      std::vector<float> one(p.N);
      linear(p.x.data() + m * p.K, 1, p.K, bf16 ? static_cast<const void*>(p.wb.data()) : p.wf.data(),
             bf16 ? WeightFormat::BF16 : WeightFormat::F32, p.N, p.bias.data(), one.data());
      for (int64_t n = 0; n < p.N; ++n) ASSERT_EQ(one[n], all[m * p.N + n]) << "row " << m;
    }
  }
}

TEST(Linear, Dot16MatchesAcrossIsas) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int n : {1, 15, 16, 17, 72, 128, 1000}) {
    std::vector<float> a(n), b(n);
    for (int i = 0; i < n; ++i) a[i] = nd(rng), b[i] = nd(rng);
    const float ref = linear_kernels_scalar().dot(a.data(), b.data(), n);
    for (const LinearKernels* kt : available()) EXPECT_EQ(kt->dot(a.data(), b.data(), n), ref) << n;
  }
}

}  // namespace
}  // namespace la

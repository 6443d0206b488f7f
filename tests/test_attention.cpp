// Decoder attention: the inner kernels' SIMD variants equal the scalar twin bit for bit; attention_gqa
// matches a double-precision softmax attention and gives a row the same bits alone or in a chunk.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/vmath.h"

namespace la {
namespace {

std::vector<const AttentionKernels*> available() {
  std::vector<const AttentionKernels*> out = {&attention_kernels_scalar()};
  if (detected_isa() >= Isa::Avx2) out.push_back(&attention_kernels_avx2());
  if (detected_isa() >= Isa::Avx512) out.push_back(&attention_kernels_avx512());
  return out;
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST(Attention, InnerKernelsEqualTheScalarTwin) {
  for (int G : {1, 3, 4, 8}) {
    for (int D : {16, 72, 128, 100}) {
      for (int64_t n : {1, 7, 31, 32, 33, 300}) {
        const int64_t ldk = n + 5, lds = n + 3, ldo = D + 2;
        auto q = randn(G * D, 1), kt = randn(D * ldk, 2), p = randn(G * lds, 3), v = randn(n * (D + 1), 4);
        const AttentionKernels& ref = attention_kernels_scalar();
        std::vector<float> s_ref(G * lds, 0.0f), o_ref = randn(G * ldo, 5);
        std::vector<float> o_init = o_ref;
        ref.scores(q.data(), G, D, kt.data(), ldk, n, s_ref.data(), lds);
        ref.weighted(p.data(), lds, G, n, v.data(), D + 1, D, o_ref.data(), ldo);
        for (const AttentionKernels* k : available()) {
          std::vector<float> s(G * lds, 0.0f), o = o_init;
          k->scores(q.data(), G, D, kt.data(), ldk, n, s.data(), lds);
          k->weighted(p.data(), lds, G, n, v.data(), D + 1, D, o.data(), ldo);
          for (int g = 0; g < G; ++g) {
            for (int64_t j = 0; j < n; ++j) ASSERT_EQ(s[g * lds + j], s_ref[g * lds + j]) << G << " " << D << " " << n;
            for (int d = 0; d < D; ++d) ASSERT_EQ(o[g * ldo + d], o_ref[g * ldo + d]) << G << " " << D << " " << n;
          }
        }
      }
    }
  }
}

// The bf16 pair-product kernels: the AVX-512 BF16 variant (where the CPU has it) gives the scalar
// twin's bits, with tiny values that exercise the subnormal flushing and odd tails everywhere.
TEST(AttentionBf16, InnerKernelsEqualTheScalarTwin) {
  std::vector<const AttentionBf16Kernels*> variants = {&attention_bf16_kernels_scalar()};
  if (cpu_has_bf16()) variants.push_back(&attention_bf16_kernels_avx512());
  std::printf("[          ] bf16 variants: %zu (AVX-512 BF16 %s)\n", variants.size(), cpu_has_bf16() ? "yes" : "no");
  const AttentionBf16Kernels& ref = attention_bf16_kernels_scalar();
  for (int P : {1, 5, 36, 64}) {
    for (int64_t nq : {1, 3, 4, 9}) {
      for (int64_t nk : {16, 48, 64, 80, 144}) {
        auto qf = randn(nq * 2 * P, 6), kf = randn(2 * P * nk, 7);
        for (size_t i = 0; i < qf.size(); i += 7) qf[i] *= 1e-20f;  // products far below FLT_MIN
        for (size_t i = 0; i < kf.size(); i += 5) kf[i] *= 1e-19f;
        qf[0] = 1e-39f;  // a subnormal input
        std::vector<uint16_t> q(qf.size()), k(kf.size());
        ref.to_bf16(qf.data(), static_cast<int64_t>(qf.size()), q.data());
        ref.to_bf16(kf.data(), static_cast<int64_t>(kf.size()), k.data());
        const int Dv = 16 * static_cast<int>((nk + 15) / 16);  // reuse nk as a head width
        const int64_t T = P, lds = nk + 3, lda = Dv + 5;
        std::vector<float> s_ref(nq * lds, 0.0f), a_ref = randn(nq * lda, 8);
        for (size_t i = 0; i < a_ref.size(); i += 3) a_ref[i] *= 1e-38f;  // subnormal accumulators
        const std::vector<float> a_init = a_ref;
        std::vector<uint16_t> vp(static_cast<size_t>(T * Dv * 2));
        ref.to_bf16(randn(vp.size(), 9).data(), static_cast<int64_t>(vp.size()), vp.data());
        ref.scores(q.data(), 2 * P, nq, P, k.data(), 2 * nk, nk, 0.125f, s_ref.data(), lds);
        ref.weighted(q.data(), 2 * P, nq, T, vp.data(), Dv, a_ref.data(), lda);
        for (const AttentionBf16Kernels* kk : variants) {
          std::vector<uint16_t> q2(qf.size());
          kk->to_bf16(qf.data(), static_cast<int64_t>(qf.size()), q2.data());
          ASSERT_EQ(q2, q) << "to_bf16";
          std::vector<float> s(nq * lds, 0.0f), a = a_init;
          kk->scores(q.data(), 2 * P, nq, P, k.data(), 2 * nk, nk, 0.125f, s.data(), lds);
          kk->weighted(q.data(), 2 * P, nq, T, vp.data(), Dv, a.data(), lda);
          for (int64_t i = 0; i < nq; ++i) {
            for (int64_t j = 0; j < nk; ++j)
              ASSERT_EQ(s[i * lds + j], s_ref[i * lds + j]) << "scores P=" << P << " nq=" << nq << " nk=" << nk;
            for (int d = 0; d < Dv; ++d)
              ASSERT_EQ(a[i * lda + d], a_ref[i * lda + d]) << "weighted P=" << P << " nq=" << nq << " Dv=" << Dv;
          }
        }
      }
    }
  }
}

// The fused softmax pass: the same sum and weights as vmath's exp_sum followed by to_bf16, in every
// variant, for row lengths around the 16-lane width, values that underflow (exp below −86.9 gives 0)
// and a shift that makes some weights subnormal in float32 (flushed by the bf16 rounding).
TEST(AttentionBf16, ExpToBf16EqualsExpSumThenRounding) {
  std::vector<const AttentionBf16Kernels*> variants = {&attention_bf16_kernels_scalar()};
  if (cpu_has_bf16()) variants.push_back(&attention_bf16_kernels_avx512());
  const VmathKernels& vm = vmath();
  const AttentionBf16Kernels& ref = attention_bf16_kernels_scalar();
  for (int64_t n : {1, 15, 16, 17, 48, 511, 512}) {
    for (float sub : {0.0f, 3.5f, 90.0f}) {
      std::vector<float> x = randn(static_cast<size_t>(n), static_cast<uint32_t>(n));
      for (size_t i = 0; i < x.size(); i += 5) x[i] *= 40.0f;  // exps from ~1e-30 to ~1e30
      if (n > 2) x[1] = -200.0f;                            // below −86.9: exactly 0
      std::vector<float> e(x.size());
      const float want_sum = vm.exp_sum(x.data(), sub, e.data(), n);
      std::vector<uint16_t> want(x.size());
      ref.to_bf16(e.data(), n, want.data());
      for (const AttentionBf16Kernels* kk : variants) {
        std::vector<float> scratch = x;
        std::vector<uint16_t> got(x.size(), 0xffff);
        const float sum = kk->exp_to_bf16(scratch.data(), sub, n, got.data());
        ASSERT_EQ(std::memcmp(&sum, &want_sum, 4), 0) << "n=" << n << " sub=" << sub << ": " << sum << " vs " << want_sum;
        ASSERT_EQ(got, want) << "n=" << n << " sub=" << sub;
      }
    }
  }
}

// bf16 attention against exact attention (double) of the same bf16-rounded q, k and v. What is left
// is the rounding of the softmax weights to bf16 (relative 2⁻⁹ each, so at most 2⁻⁹·max|v| on an
// output) and float32 arithmetic (exp, sums: 1e-5 relative is generous); padding, layouts and odd
// head sizes must all be right to stay inside that.
TEST(AttentionBf16, EqualsExactAttentionOfTheRoundedInputs) {
  ThreadPool pool(2);
  PoolScope scope(&pool);
  const AttentionBf16Kernels& bk = attention_bf16_kernels_scalar();
  auto rounded = [&](float x) {
    uint16_t h;
    bk.to_bf16(&x, 1, &h);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return static_cast<double>(f);
  };
  for (int D : {72, 9}) {
    for (int64_t L : {37, 600}) {
      const int heads = 3;
      const int64_t ld = 3 * heads * D + 1;
      auto x = randn(L * ld, 10);
      const float* q = x.data();
      const float* k = x.data() + heads * D;
      const float* v = x.data() + 2 * heads * D;
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      std::vector<float> got(L * heads * D);
      attention_bidirectional_bf16(q, k, v, ld, L, heads, D, scale, got.data(), heads * D);
      double worst = 0, worst_bound = 0;
      bool ok = true;
      std::vector<double> w(L);
      for (int h = 0; h < heads; ++h)
        for (int64_t i = 0; i < L; ++i) {
          double m = -1e300, sum = 0, vmax = 0;
          for (int64_t j = 0; j < L; ++j) {
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += rounded(q[i * ld + h * D + d]) * rounded(k[j * ld + h * D + d]);
            w[j] = dot * scale;
            m = std::max(m, w[j]);
          }
          for (int64_t j = 0; j < L; ++j) sum += (w[j] = std::exp(w[j] - m));
          for (int d = 0; d < D; ++d) {
            double o = 0;
            for (int64_t j = 0; j < L; ++j) {
              o += w[j] * rounded(v[j * ld + h * D + d]);
              vmax = std::max(vmax, std::fabs(rounded(v[j * ld + h * D + d])));
            }
            o /= sum;
            const double err = std::fabs(got[i * heads * D + h * D + d] - o);
            const double bound = (std::ldexp(1.0, -9) + 1e-5) * vmax;
            worst = std::max(worst, err);
            worst_bound = std::max(worst_bound, bound);
            ok = ok && err <= bound;
          }
        }
      EXPECT_TRUE(ok) << "D=" << D << " L=" << L << ": max error " << worst;
      std::printf("[          ] D=%d L=%lld: max error %.3g (per-output bound up to %.3g)\n", D,
                  static_cast<long long>(L), worst, worst_bound);
    }
  }
}

// Cache of `len` positions for kv heads in the engine's layout (K transposed).
struct Cache {
  int kv, D;
  int64_t cap;
  std::vector<float> k, v;
};

Cache make_cache(int kv, int D, int64_t cap, uint32_t seed) {
  return {kv, D, cap, randn(static_cast<size_t>(kv) * D * cap, seed), randn(static_cast<size_t>(kv) * cap * D, seed + 1)};
}

TEST(Attention, GqaMatchesDoubleReferenceAndIsBatchInvariant) {
  const int heads = 8, kv = 2, D = 64;
  const int64_t cap = 96, C = 70, rows = 12;  // a chunk of 12 rows: 6 causal, then a 6-row MTP window
  Cache c = make_cache(kv, D, cap, 7);
  auto q = randn(rows * heads * D, 9);
  std::vector<KeyRanges> ranges(rows);
  const int64_t K = C + rows, L = K - 6;
  for (int64_t r = 0; r < rows; ++r) {
    if (r >= rows - 6) {
      ranges[r].a_end = static_cast<int32_t>(L - 1);
      ranges[r].b_begin = static_cast<int32_t>(L);
      ranges[r].b_end = static_cast<int32_t>(K);
    } else {
      ranges[r].a_end = static_cast<int32_t>(C + r + 1);
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  ThreadPool pool(2);
  PoolScope scope(&pool);
  std::vector<float> all(rows * heads * D);
  attention_gqa(q.data(), rows, heads * D, heads, kv, D, c.k.data(), c.v.data(), cap, ranges.data(), scale, all.data(),
                heads * D);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> one(heads * D);
    attention_gqa(q.data() + r * heads * D, 1, heads * D, heads, kv, D, c.k.data(), c.v.data(), cap, &ranges[r], scale,
                  one.data(), heads * D);
    for (int i = 0; i < heads * D; ++i) ASSERT_EQ(one[i], all[r * heads * D + i]) << "row " << r;
    for (int h = 0; h < heads; ++h) {
      const int g = h / (heads / kv);
      std::vector<int64_t> keys;
      for (int64_t j = 0; j < ranges[r].a_end; ++j) keys.push_back(j);
      for (int64_t j = ranges[r].b_begin; j < ranges[r].b_end; ++j) keys.push_back(j);
      std::vector<double> s(keys.size());
      double m = -1e300;
      for (size_t i = 0; i < keys.size(); ++i) {
        double dot = 0;
        for (int d = 0; d < D; ++d)
          dot += static_cast<double>(q[(r * heads + h) * D + d]) * c.k[(static_cast<int64_t>(g) * D + d) * cap + keys[i]];
        s[i] = dot * scale;
        m = std::max(m, s[i]);
      }
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - m));
      for (int d = 0; d < D; ++d) {
        double o = 0;
        for (size_t i = 0; i < keys.size(); ++i) o += s[i] / z * c.v[(static_cast<int64_t>(g) * cap + keys[i]) * D + d];
        // float32 dots of D terms (scores ≈ ±10 here) and sums of ≤ 80 weights: a few 1e-6 relative.
        EXPECT_NEAR(all[(r * heads + h) * D + d], o, 2e-5) << r << " " << h << " " << d;
      }
    }
  }
}

}  // namespace
}  // namespace la

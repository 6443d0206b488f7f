// Decoder attention: the inner kernels' SIMD variants equal the scalar twin bit for bit; attention_gqa
// matches a double-precision softmax attention and gives a row the same bits alone or in a chunk.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"

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

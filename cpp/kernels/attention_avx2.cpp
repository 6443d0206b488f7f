// AVX2 attention inner kernels (8 lanes; same operation order as the scalar twin).
#include <immintrin.h>

#include <cmath>

#include "kernels/attention.h"

namespace la {

namespace {

// G heads × 8 keys per pass; ragged keys at the end go through the scalar order.
template <int G>
void scores_g(const float* q, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 a[G];
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) a[g] = _mm256_setzero_ps();
    for (int d = 0; d < D; ++d) {
      const __m256 k = _mm256_loadu_ps(kt + d * ldk + j);
      #pragma GCC unroll 8
      for (int g = 0; g < G; ++g) a[g] = _mm256_fmadd_ps(_mm256_set1_ps(q[g * D + d]), k, a[g]);
    }
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) _mm256_storeu_ps(s + g * lds + j, a[g]);
  }
  for (; j < n; ++j)
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      float acc = 0.0f;
      for (int d = 0; d < D; ++d) acc = std::fma(q[g * D + d], kt[d * ldk + j], acc);
      s[g * lds + j] = acc;
    }
}

void scores_avx2(const float* q, int G, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  int g = 0;
  for (; g + 4 <= G; g += 4) scores_g<4>(q + g * D, D, kt, ldk, n, s + g * lds, lds);
  for (; g < G; ++g) scores_g<1>(q + g * D, D, kt, ldk, n, s + g * lds, lds);
}

template <int G>
void weighted_g(const float* p, int64_t ldp, int64_t n, const float* v, int64_t ldv, int D, float* out, int64_t ldo) {
  int d0 = 0;
  for (; d0 + 16 <= D; d0 += 16) {
    __m256 a[G][2];
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g)
      #pragma GCC unroll 4
      for (int i = 0; i < 2; ++i) a[g][i] = _mm256_loadu_ps(out + g * ldo + d0 + 8 * i);
    for (int64_t j = 0; j < n; ++j) {
      const __m256 v0 = _mm256_loadu_ps(v + j * ldv + d0), v1 = _mm256_loadu_ps(v + j * ldv + d0 + 8);
      #pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        const __m256 pg = _mm256_set1_ps(p[g * ldp + j]);
        a[g][0] = _mm256_fmadd_ps(pg, v0, a[g][0]);
        a[g][1] = _mm256_fmadd_ps(pg, v1, a[g][1]);
      }
    }
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g)
      #pragma GCC unroll 4
      for (int i = 0; i < 2; ++i) _mm256_storeu_ps(out + g * ldo + d0 + 8 * i, a[g][i]);
  }
  for (; d0 < D; ++d0)
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      float acc = out[g * ldo + d0];
      for (int64_t j = 0; j < n; ++j) acc = std::fma(p[g * ldp + j], v[j * ldv + d0], acc);
      out[g * ldo + d0] = acc;
    }
}

void weighted_avx2(const float* p, int64_t ldp, int G, int64_t n, const float* v, int64_t ldv, int D, float* out,
                   int64_t ldo) {
  int g = 0;
  for (; g + 4 <= G; g += 4) weighted_g<4>(p + g * ldp, ldp, n, v, ldv, D, out + g * ldo, ldo);
  for (; g < G; ++g) weighted_g<1>(p + g * ldp, ldp, n, v, ldv, D, out + g * ldo, ldo);
}

}  // namespace

const AttentionKernels& attention_kernels_avx2() {
  static const AttentionKernels k{scores_avx2, weighted_avx2};
  return k;
}

}  // namespace la

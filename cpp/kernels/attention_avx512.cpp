// AVX-512 attention inner kernels: keys (scores) or head dimensions (weighted sum) across the 16
// lanes, the reduction dimension as an fma chain, as in the scalar twin.
#include <immintrin.h>

#include "kernels/attention.h"

namespace la {

namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// G query heads × 32 keys per pass: 2·G accumulators, q[g][d] broadcast from memory.
template <int G>
void scores_block(const float* q, int D, const float* kt, int64_t ldk, int64_t j, int64_t n, float* s, int64_t lds) {
  const __mmask16 m0 = tail_mask(n - j), m1 = tail_mask(n - j - 16 > 0 ? n - j - 16 : 0);
  __m512 a0[G], a1[G];
  #pragma GCC unroll 8
  for (int g = 0; g < G; ++g) a0[g] = a1[g] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    const float* kr = kt + d * ldk + j;
    const __m512 k0 = _mm512_maskz_loadu_ps(m0, kr), k1 = _mm512_maskz_loadu_ps(m1, kr + 16);
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const __m512 qv = _mm512_set1_ps(q[g * D + d]);
      a0[g] = _mm512_fmadd_ps(qv, k0, a0[g]);
      a1[g] = _mm512_fmadd_ps(qv, k1, a1[g]);
    }
  }
  #pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    _mm512_mask_storeu_ps(s + g * lds + j, m0, a0[g]);
    _mm512_mask_storeu_ps(s + g * lds + j + 16, m1, a1[g]);
  }
}

template <int G>
void scores_g(const float* q, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  for (int64_t j = 0; j < n; j += 32) scores_block<G>(q, D, kt, ldk, j, n, s, lds);
}

void scores_avx512(const float* q, int G, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  int g = 0;
  for (; g + 8 <= G; g += 8) scores_g<8>(q + g * D, D, kt, ldk, n, s + g * lds, lds);
  for (; g < G; ++g) scores_g<1>(q + g * D, D, kt, ldk, n, s + g * lds, lds);
}

// G heads × 64 dimensions per pass (4·G accumulators), keys in order.
template <int G>
void weighted_block(const float* p, int64_t ldp, int64_t n, const float* v, int64_t ldv, int D, int d0, float* out,
                    int64_t ldo) {
  __mmask16 m[4];
  #pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) m[i] = tail_mask(D - d0 - 16 * i > 0 ? D - d0 - 16 * i : 0);
  __m512 a[G][4];
  #pragma GCC unroll 8
  for (int g = 0; g < G; ++g)
    #pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) a[g][i] = _mm512_maskz_loadu_ps(m[i], out + g * ldo + d0 + 16 * i);
  for (int64_t j = 0; j < n; ++j) {
    const float* vr = v + j * ldv + d0;
    __m512 vv[4];
    #pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) vv[i] = _mm512_maskz_loadu_ps(m[i], vr + 16 * i);
    #pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const __m512 pg = _mm512_set1_ps(p[g * ldp + j]);
      #pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) a[g][i] = _mm512_fmadd_ps(pg, vv[i], a[g][i]);
    }
  }
  #pragma GCC unroll 8
  for (int g = 0; g < G; ++g)
    #pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) _mm512_mask_storeu_ps(out + g * ldo + d0 + 16 * i, m[i], a[g][i]);
}

void weighted_avx512(const float* p, int64_t ldp, int G, int64_t n, const float* v, int64_t ldv, int D, float* out,
                     int64_t ldo) {
  for (int d0 = 0; d0 < D; d0 += 64) {
    int g = 0;
    for (; g + 4 <= G; g += 4) weighted_block<4>(p + g * ldp, ldp, n, v, ldv, D, d0, out + g * ldo, ldo);
    for (; g < G; ++g) weighted_block<1>(p + g * ldp, ldp, n, v, ldv, D, d0, out + g * ldo, ldo);
  }
}

}  // namespace

const AttentionKernels& attention_kernels_avx512() {
  static const AttentionKernels k{scores_avx512, weighted_avx512};
  return k;
}

}  // namespace la

// AVX-512 BF16 attention products: vdpbf16ps, 16 float32 lanes each taking one bf16 pair per step
// (keys across the lanes for the scores, head dimensions for the weighted sum).
#include <immintrin.h>

#include "kernels/attention.h"
#include "kernels/vmath_avx512_inl.h"

namespace la {

namespace {

inline __m512bh load_bh(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }

inline __m512bh bcast_pair(const uint16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return (__m512bh)_mm512_set1_epi32(v);
}

void to_bf16_avx512(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(out + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// exp_sum's loop (vmath_avx512.cpp) with the rounding to bf16 in place of the float store.
float exp_to_bf16_avx512(float* s, float sub, int64_t n, uint16_t* p) {
  __m512 acc = _mm512_setzero_ps();
  const __m512 m = _mm512_set1_ps(sub);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = avx512::exp16(_mm512_sub_ps(_mm512_loadu_ps(s + i), m));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + i), (__m256i)_mm512_cvtneps_pbh(e));
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = avx512::exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + i), m));
    _mm256_mask_storeu_epi16(p + i, k, (__m256i)_mm512_cvtneps_pbh(e));
    acc = _mm512_mask_add_ps(acc, k, acc, e);
  }
  return avx512::tree16(acc);
}

// MR query rows × NV·16 keys.
template <int MR, int NV>
void scores_tile(const uint16_t* q, int64_t ldq, int P, const uint16_t* kp, int64_t ldk, float scale, float* s,
                 int64_t lds) {
  __m512 acc[MR][NV];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int p = 0; p < P; ++p) {
    __m512bh kv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) kv[v] = load_bh(kp + p * ldk + 32 * v);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512bh qv = bcast_pair(q + i * ldq + 2 * p);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], qv, kv[v]);
    }
  }
  const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(s + i * lds + 16 * v, _mm512_mul_ps(sc, acc[i][v]));
}

template <int MR>
void scores_rows(const uint16_t* q, int64_t ldq, int P, const uint16_t* kp, int64_t ldk, int64_t nk, float scale,
                 float* s, int64_t lds) {
  int64_t j = 0;
  for (; j + 64 <= nk; j += 64) scores_tile<MR, 4>(q, ldq, P, kp + 2 * j, ldk, scale, s + j, lds);
  switch ((nk - j) / 16) {
    case 3: scores_tile<MR, 3>(q, ldq, P, kp + 2 * j, ldk, scale, s + j, lds); break;
    case 2: scores_tile<MR, 2>(q, ldq, P, kp + 2 * j, ldk, scale, s + j, lds); break;
    case 1: scores_tile<MR, 1>(q, ldq, P, kp + 2 * j, ldk, scale, s + j, lds); break;
    default: break;
  }
}

void scores_bf16_avx512(const uint16_t* q, int64_t ldq, int64_t nq, int P, const uint16_t* kp, int64_t ldk,
                        int64_t nk, float scale, float* s, int64_t lds) {
  int64_t i = 0;
  for (; i + 4 <= nq; i += 4) scores_rows<4>(q + i * ldq, ldq, P, kp, ldk, nk, scale, s + i * lds, lds);
  for (; i < nq; ++i) scores_rows<1>(q + i * ldq, ldq, P, kp, ldk, nk, scale, s + i * lds, lds);
}

// MR rows × NV·16 columns of the head dimension.
template <int MR, int NV>
void weighted_tile(const uint16_t* p, int64_t ldp, int64_t T, const uint16_t* vp, int Dv, float* acc, int64_t lda) {
  __m512 a[MR][NV];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 5
    for (int v = 0; v < NV; ++v) a[i][v] = _mm512_loadu_ps(acc + i * lda + 16 * v);
  for (int64_t t = 0; t < T; ++t) {
    __m512bh vv[NV];
#pragma GCC unroll 5
    for (int v = 0; v < NV; ++v) vv[v] = load_bh(vp + (t * Dv + 16 * v) * 2);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512bh pv = bcast_pair(p + i * ldp + 2 * t);
#pragma GCC unroll 5
      for (int v = 0; v < NV; ++v) a[i][v] = _mm512_dpbf16_ps(a[i][v], pv, vv[v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 5
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + i * lda + 16 * v, a[i][v]);
}

template <int MR>
void weighted_rows(const uint16_t* p, int64_t ldp, int64_t T, const uint16_t* vp, int Dv, float* acc, int64_t lda) {
  int d = 0;
  for (; d + 80 <= Dv; d += 80) weighted_tile<MR, 5>(p, ldp, T, vp + 2 * d, Dv, acc + d, lda);
  switch ((Dv - d) / 16) {
    case 4: weighted_tile<MR, 4>(p, ldp, T, vp + 2 * d, Dv, acc + d, lda); break;
    case 3: weighted_tile<MR, 3>(p, ldp, T, vp + 2 * d, Dv, acc + d, lda); break;
    case 2: weighted_tile<MR, 2>(p, ldp, T, vp + 2 * d, Dv, acc + d, lda); break;
    case 1: weighted_tile<MR, 1>(p, ldp, T, vp + 2 * d, Dv, acc + d, lda); break;
    default: break;
  }
}

void weighted_bf16_avx512(const uint16_t* p, int64_t ldp, int64_t nq, int64_t T, const uint16_t* vp, int Dv,
                          float* acc, int64_t lda) {
  int64_t i = 0;
  for (; i + 4 <= nq; i += 4) weighted_rows<4>(p + i * ldp, ldp, T, vp, Dv, acc + i * lda, lda);
  for (; i < nq; ++i) weighted_rows<1>(p + i * ldp, ldp, T, vp, Dv, acc + i * lda, lda);
}

}  // namespace

const AttentionBf16Kernels& attention_bf16_kernels_avx512() {
  static const AttentionBf16Kernels k{to_bf16_avx512, exp_to_bf16_avx512, scores_bf16_avx512, weighted_bf16_avx512};
  return k;
}

}  // namespace la

// AVX2 vectorised math: two 8-lane halves per 16 logical lanes (same algorithm as vmath_scalar.cpp).
#include <immintrin.h>

#include <cstring>

#include "kernels/vmath.h"

namespace la {

namespace {

inline __m256 exp8(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-86.9f), _CMP_NGE_UQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_add_epi32(_mm256_castps_si256(y), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23));
  return _mm256_andnot_ps(under, _mm256_castsi256_ps(bits));
}

inline __m256 gelu8(__m256 v) {
  const __m256 inner = _mm256_mul_ps(
      _mm256_set1_ps(0.7978845608028654f),
      _mm256_add_ps(v, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), v), v)));
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(2.0f), inner));
  const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                 _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
}

inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

inline float tree16(__m256 lo, __m256 hi) {
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

// Tails go through a zero-padded 16-float buffer; only the valid lanes are stored or summed.
float exp_sum_avx2(const float* x, float sub, float* y, int64_t n) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  const __m256 s = _mm256_set1_ps(sub);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    const __m256 b = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), s));
    _mm256_storeu_ps(y + i, a);
    _mm256_storeu_ps(y + i + 8, b);
    lo = _mm256_add_ps(lo, a);
    hi = _mm256_add_ps(hi, b);
  }
  if (i < n) {
    alignas(32) float buf[16] = {0};
    alignas(32) int32_t mbits[16];
    const int64_t len = n - i;
    std::memcpy(buf, x + i, len * sizeof(float));
    for (int l = 0; l < 16; ++l) mbits[l] = l < len ? -1 : 0;
    const __m256 a = exp8(_mm256_sub_ps(_mm256_load_ps(buf), s));
    const __m256 b = exp8(_mm256_sub_ps(_mm256_load_ps(buf + 8), s));
    _mm256_store_ps(buf, a);
    _mm256_store_ps(buf + 8, b);
    std::memcpy(y + i, buf, len * sizeof(float));
    lo = _mm256_blendv_ps(lo, _mm256_add_ps(lo, a), _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mbits))));
    hi = _mm256_blendv_ps(hi, _mm256_add_ps(hi, b),
                          _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mbits + 8))));
  }
  return tree16(lo, hi);
}

float max_avx2(const float* x, int64_t n) {
  float m = x[0];
  int64_t i = 0;
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i));
    alignas(32) float buf[8];
    _mm256_store_ps(buf, v);
    for (float b : buf) m = b > m ? b : m;
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <typename F>
void map_tail(float* dst, const float* a, const float* b, int64_t len, F f) {
  alignas(32) float ba[8] = {0}, bb[8] = {0};
  std::memcpy(ba, a, len * sizeof(float));
  if (b) std::memcpy(bb, b, len * sizeof(float));
  _mm256_store_ps(ba, f(_mm256_load_ps(ba), _mm256_load_ps(bb)));
  std::memcpy(dst, ba, len * sizeof(float));
}

void gelu_tanh_avx2(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  if (i < n) map_tail(x + i, x + i, nullptr, n - i, [](__m256 a, __m256) { return gelu8(a); });
}

void silu_mul_avx2(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(g + i), _mm256_loadu_ps(u + i)));
  if (i < n) map_tail(out + i, g + i, u + i, n - i, [](__m256 a, __m256 b) { return silu_mul8(a, b); });
}

}  // namespace

const VmathKernels& vmath_kernels_avx2() {
  static const VmathKernels k{exp_sum_avx2, max_avx2, gelu_tanh_avx2, silu_mul_avx2};
  return k;
}

}  // namespace la

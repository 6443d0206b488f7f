// AVX-512 vectorised math (same algorithm and operation order as vmath_scalar.cpp).
#include <immintrin.h>

#include "kernels/vmath.h"
#include "kernels/vmath_avx512_inl.h"

namespace la {

namespace {

using avx512::exp16;
using avx512::tree16;

float exp_sum_avx512(const float* x, float sub, float* y, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  const __m512 s = _mm512_set1_ps(sub);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
    _mm512_storeu_ps(y + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s));
    _mm512_mask_storeu_ps(y + i, m, e);
    acc = _mm512_mask_add_ps(acc, m, acc, e);
  }
  return tree16(acc);
}

float max_avx512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(x[0]);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_mask_max_ps(m, static_cast<__mmask16>((1u << (n - i)) - 1u), m, _mm512_maskz_loadu_ps(
                                        static_cast<__mmask16>((1u << (n - i)) - 1u), x + i));
  return _mm512_reduce_max_ps(m);
}

inline __m512 gelu16(__m512 v) {
  const __m512 inner = _mm512_mul_ps(
      _mm512_set1_ps(0.7978845608028654f),
      _mm512_add_ps(v, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), v), v)));
  const __m512 e = exp16(_mm512_mul_ps(_mm512_set1_ps(2.0f), inner));
  const __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                 _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
}

void gelu_tanh_avx512(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, gelu16(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

inline __m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}

void silu_mul_avx512(const float* g, const float* u, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(g + i), _mm512_loadu_ps(u + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(out + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, u + i)));
  }
}

}  // namespace

const VmathKernels& vmath_kernels_avx512() {
  static const VmathKernels k{exp_sum_avx512, max_avx512, gelu_tanh_avx512, silu_mul_avx512};
  return k;
}

}  // namespace la

// Scalar twin of the attention inner kernels (-ffp-contract=off: only std::fma fuses).
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/vmath.h"

namespace la {

namespace {

void scores_scalar(const float* q, int G, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  for (int g = 0; g < G; ++g)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int d = 0; d < D; ++d) acc = std::fma(q[g * D + d], kt[d * ldk + j], acc);
      s[g * lds + j] = acc;
    }
}

void weighted_scalar(const float* p, int64_t ldp, int G, int64_t n, const float* v, int64_t ldv, int D, float* out,
                     int64_t ldo) {
  for (int g = 0; g < G; ++g)
    for (int d = 0; d < D; ++d) {
      float acc = out[g * ldo + d];
      for (int64_t j = 0; j < n; ++j) acc = std::fma(p[g * ldp + j], v[j * ldv + d], acc);
      out[g * ldo + d] = acc;
    }
}

// ---- bf16 pair products (attention.h), spelled out ----

inline float bits_to_float(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

inline float flush(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }

inline float bf16_value(uint16_t h) { return flush(bits_to_float(static_cast<uint32_t>(h) << 16)); }

void to_bf16_scalar(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    const float v = flush(x[i]);
    std::memcpy(&b, &v, 4);
    if (std::isnan(v)) {
      out[i] = static_cast<uint16_t>((b >> 16) | 0x40u);  // quiet NaN, sign and payload top kept
      continue;
    }
    b += 0x7fffu + ((b >> 16) & 1u);  // round to nearest even
    out[i] = static_cast<uint16_t>(b >> 16);
  }
}

inline float pair_product(float a, const uint16_t* x, const uint16_t* y) {
  a = flush(std::fma(bf16_value(x[1]), bf16_value(y[1]), flush(a)));
  return flush(std::fma(bf16_value(x[0]), bf16_value(y[0]), a));
}

float exp_to_bf16_scalar(float* s, float sub, int64_t n, uint16_t* p) {
  const float sum = vmath_kernels_scalar().exp_sum(s, sub, s, n);
  to_bf16_scalar(s, n, p);
  return sum;
}

void scores_bf16_scalar(const uint16_t* q, int64_t ldq, int64_t nq, int P, const uint16_t* kp, int64_t ldk,
                        int64_t nk, float scale, float* s, int64_t lds) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nk; ++j) {
      float a = 0.0f;
      for (int p = 0; p < P; ++p) a = pair_product(a, q + i * ldq + 2 * p, kp + p * ldk + 2 * j);
      s[i * lds + j] = scale * a;
    }
}

void weighted_bf16_scalar(const uint16_t* p, int64_t ldp, int64_t nq, int64_t T, const uint16_t* vp, int Dv,
                          float* acc, int64_t lda) {
  for (int64_t i = 0; i < nq; ++i)
    for (int d = 0; d < Dv; ++d) {
      float a = acc[i * lda + d];
      for (int64_t t = 0; t < T; ++t) a = pair_product(a, p + i * ldp + 2 * t, vp + (t * Dv + d) * 2);
      acc[i * lda + d] = a;
    }
}

}  // namespace

const AttentionBf16Kernels& attention_bf16_kernels_scalar() {
  static const AttentionBf16Kernels k{to_bf16_scalar, exp_to_bf16_scalar, scores_bf16_scalar, weighted_bf16_scalar};
  return k;
}

const AttentionKernels& attention_kernels_scalar() {
  static const AttentionKernels k{scores_scalar, weighted_scalar};
  return k;
}

}  // namespace la

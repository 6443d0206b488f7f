// Scalar twin of the linear kernels: the reference for the SIMD variants, and the fallback path.
// Built with -ffp-contract=off so the only fused operations are the explicit std::fma calls.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/linear.h"

namespace la {

namespace {

inline float tree16(const float* lane) {
  float s8[8], s4[4], s2[2];
  for (int i = 0; i < 8; ++i) s8[i] = lane[i] + lane[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}

template <typename LoadW>
void linear_generic(const float* x, int64_t M, int64_t ldx, int64_t K, LoadW load_w, const float* bias, float* y,
                    int64_t ldy, int64_t n_begin, int64_t n_end) {
  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * ldx;
      float lane[16] = {0};
      for (int64_t k0 = 0; k0 < K; k0 += 16) {
        const int64_t len = K - k0 < 16 ? K - k0 : 16;
        for (int64_t l = 0; l < len; ++l) lane[l] = std::fma(xr[k0 + l], load_w(n, k0 + l), lane[l]);
      }
      float s = tree16(lane);
      y[m * ldy + n] = bias ? s + bias[n] : s;
    }
  }
}

void linear_f32_scalar(const float* x, int64_t M, int64_t ldx, int64_t K, const void* w, const float* bias,
                       float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  const float* wf = static_cast<const float*>(w);
  linear_generic(
      x, M, ldx, K, [&](int64_t n, int64_t k) { return wf[n * K + k]; }, bias, y, ldy, n_begin, n_end);
}

void linear_bf16_scalar(const float* x, int64_t M, int64_t ldx, int64_t K, const void* w, const float* bias,
                        float* y, int64_t ldy, int64_t n_begin, int64_t n_end) {
  const uint16_t* wb = static_cast<const uint16_t*>(w);
  linear_generic(
      x, M, ldx, K, [&](int64_t n, int64_t k) { return bf16_to_f32(wb[n * K + k]); }, bias, y, ldy, n_begin,
      n_end);
}

float dot16_scalar(const float* a, const float* b, int64_t n) {
  float lane[16] = {0};
  for (int64_t k0 = 0; k0 < n; k0 += 16) {
    const int64_t len = n - k0 < 16 ? n - k0 : 16;
    for (int64_t l = 0; l < len; ++l) lane[l] = std::fma(a[k0 + l], b[k0 + l], lane[l]);
  }
  return tree16(lane);
}

}  // namespace

const LinearKernels& linear_kernels_scalar() {
  static const LinearKernels k{linear_f32_scalar, linear_bf16_scalar, dot16_scalar};
  return k;
}

}  // namespace la

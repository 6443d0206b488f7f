// Scalar twin of the vectorised math kernels (built with -ffp-contract=off: only std::fma fuses).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/vmath.h"

namespace la {

namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kMin = -86.9f;  // below: 0 (true exp < 2e-38; keeps 2^n a normal number)
constexpr float kMax = 88.0f;   // above: clamped (keeps 2^n finite)

inline float exp_one(float x) {
  if (!(x >= kMin)) return 0.0f;  // also maps NaN to 0: never produced by finite logits
  if (x > kMax) x = kMax;
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float r2 = r * r;
  float y = std::fma(p, r2, r) + 1.0f;
  // Scale by 2^n through the exponent bits (n in [-126, 127] after the clamps).
  int32_t bits;
  std::memcpy(&bits, &y, 4);
  bits += static_cast<int32_t>(n) * (1 << 23);  // n in [-126, 127]: no negative shift
  std::memcpy(&y, &bits, 4);
  return y;
}

inline float tree16(const float* lane) {
  float s8[8], s4[4], s2[2];
  for (int i = 0; i < 8; ++i) s8[i] = lane[i] + lane[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}

float exp_sum_scalar(const float* x, float sub, float* y, int64_t n) {
  float lane[16] = {0};
  for (int64_t i = 0; i < n; ++i) {
    y[i] = exp_one(x[i] - sub);
    lane[i & 15] += y[i];
  }
  return tree16(lane);
}

float max_scalar(const float* x, int64_t n) {
  float m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

inline float gelu_one(float v) {
  const float kBeta = 0.7978845608028654f, kKappa = 0.044715f;
  const float inner = kBeta * (v + kKappa * v * v * v);
  const float t = 1.0f - 2.0f / (exp_one(2.0f * inner) + 1.0f);
  return 0.5f * v * (1.0f + t);
}

void gelu_tanh_scalar(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = gelu_one(x[i]);
}

void silu_mul_scalar(const float* g, const float* u, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + exp_one(-g[i])) * u[i];
}

}  // namespace

float exp_approx(float x) { return exp_one(x); }

const VmathKernels& vmath_kernels_scalar() {
  static const VmathKernels k{exp_sum_scalar, max_scalar, gelu_tanh_scalar, silu_mul_scalar};
  return k;
}

}  // namespace la

// Scalar twin of the quantised kernels: the reference the SIMD variants must match bit for bit, and
// the fallback. Built with -ffp-contract=off so the only fused operation is the explicit std::fma.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/quant.h"

namespace la {

namespace {

void quantise_row_scalar(const float* x, int64_t K, ActScale mode, BlockQ8A* out, int64_t stride) {
  for (int64_t j = 0; j < K / kQuantActBlock; ++j) {
    const float* xb = x + j * kQuantActBlock;
    BlockQ8A& b = out[j * stride];
    float amax = 0.0f;
    for (int i = 0; i < kQuantActBlock; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
    const float d = activation_scale(amax, mode);
    int32_t sum = 0;
    for (int i = 0; i < kQuantActBlock; ++i) {
      float q = d == 0.0f ? 0.0f : std::nearbyint(xb[i] / d);  // default rounding mode: to nearest even
      q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
      b.q[i] = static_cast<int8_t>(q);
      sum += b.q[i];
    }
    b.d = d;
    b.offset = -8 * sum;
  }
}

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5·2^23 leaves no fraction bits, so the
// FPU's own rounding does the work (no libm call).
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  const float t = v + kMagic;
  return t - kMagic;
}

void quantise_weights_scalar(const float* v, QuantFormat fmt, uint8_t* tile, int r) {
  const int B = fmt == QuantFormat::Q4_128 ? 128 : 32;
  const bool q8 = fmt == QuantFormat::Q8_32;
  float amax = 0.0f, m = 0.0f;
  for (int i = 0; i < B; ++i)
    if (std::fabs(v[i]) > amax) {  // first element of largest magnitude
      amax = std::fabs(v[i]);
      m = v[i];
    }
  const uint16_t d16 = f32_to_f16(q8 ? amax / 127.0f : m / -8.0f);
  std::memcpy(tile + 2 * r, &d16, 2);
  const float d = f16_to_f32(d16), lo = q8 ? -127.0f : -8.0f, hi = q8 ? 127.0f : 7.0f;
  uint8_t codes[128];
  for (int i = 0; i < B; ++i) {
    float q = d == 0.0f ? 0.0f : round_even(v[i] / d);  // |v/d| ≤ 8 or 127 (+fp16 rounding) here
    q = q < lo ? lo : (q > hi ? hi : q);
    codes[i] = static_cast<uint8_t>(static_cast<int>(q) + (q8 ? 128 : 8));
  }
  uint8_t* qs = tile + 32;
  if (q8) {
    for (int t = 0; t < 8; ++t)
      for (int j = 0; j < 4; ++j) qs[64 * t + 4 * r + j] = codes[4 * t + j];
    return;
  }
  for (int u = 0; u < B / 32; ++u)
    for (int c = 0; c < 4; ++c)
      for (int j = 0; j < 4; ++j)
        qs[256 * u + 64 * c + 4 * r + j] =
            static_cast<uint8_t>(codes[32 * u + 4 * c + j] | (codes[32 * u + 16 + 4 * c + j] << 4));
}

// Signed weights of one 32-element unit of a tile: w[r][k] for the 16 rows.
void unpack_q4_unit(const uint8_t* qs, int8_t w[16][32]) {
  for (int c = 0; c < 4; ++c)
    for (int r = 0; r < 16; ++r)
      for (int j = 0; j < 4; ++j) {
        const uint8_t v = qs[64 * c + 4 * r + j];
        w[r][4 * c + j] = static_cast<int8_t>((v & 0x0f) - 8);
        w[r][16 + 4 * c + j] = static_cast<int8_t>((v >> 4) - 8);
      }
}

void unpack_q8_unit(const uint8_t* qs, int8_t w[16][32]) {
  for (int t = 0; t < 8; ++t)
    for (int r = 0; r < 16; ++r)
      for (int j = 0; j < 4; ++j) w[r][4 * t + j] = static_cast<int8_t>(qs[64 * t + 4 * r + j] - 128);
}

// Generic over the tile type: `units` 32-element units per tile, unpacked by `unpack`.
template <typename Tile, int Units, bool Q8>
void rows_scalar(const BlockQ8A* x, int64_t M, int64_t nb, const void* wv, const float* bias, float* y,
                 int64_t ldy, int64_t N, int64_t t0, int64_t t1) {
  const Tile* w = static_cast<const Tile*>(wv);
  const int64_t nbs = nb / Units;  // tiles per tile-row
  int8_t wq[16][32];
  float acc[16];
  for (int64_t t = t0; t < t1; ++t) {
    const int rows = static_cast<int>(N - 16 * t < 16 ? N - 16 * t : 16);
    for (int64_t m = 0; m < M; ++m) {
      const BlockQ8A* xr = x + m;
      for (int r = 0; r < 16; ++r) acc[r] = 0.0f;
      for (int64_t b = 0; b < nbs; ++b) {
        const Tile& tile = w[t * nbs + b];
        for (int u = 0; u < Units; ++u) {
          const uint8_t* qs = reinterpret_cast<const uint8_t*>(tile.qs) + 256 * (Q8 ? 2 * u : u);
          if (Q8) {
            unpack_q8_unit(qs, wq);
          } else {
            unpack_q4_unit(qs, wq);
          }
          const BlockQ8A& xb = xr[(b * Units + u) * M];
          for (int r = 0; r < rows; ++r) {
            int32_t isum = 0;
            for (int k = 0; k < 32; ++k) isum += static_cast<int32_t>(wq[r][k]) * xb.q[k];
            const float scale = f16_to_f32(tile.d[r]) * xb.d;
            acc[r] = std::fma(static_cast<float>(isum), scale, acc[r]);
          }
        }
      }
      for (int r = 0; r < rows; ++r) {
        const int64_t n = 16 * t + r;
        y[m * ldy + n] = bias ? acc[r] + bias[n] : acc[r];
      }
    }
  }
}

void widen_bf16_scalar(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

}  // namespace

const QuantKernels& quant_kernels_scalar() {
  static const QuantKernels k{quantise_weights_scalar, widen_bf16_scalar, quantise_row_scalar,
                              {rows_scalar<TileQ4x32, 1, false>, rows_scalar<TileQ4x128, 4, false>,
                               rows_scalar<TileQ8x32, 1, true>},
                              nullptr};
  return k;
}

}  // namespace la

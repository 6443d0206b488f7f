// AVX-512 linear kernels: register tiles of up to 6 rows of x × 4 weight rows (8 for one row of x) of 16-lane
// accumulators (reduction order in linear.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/linear.h"

namespace la {

namespace {

inline float tree16(__m512 v) {
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

struct F32Fmt {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_tail(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};

struct Bf16Fmt {
  using T = uint16_t;
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 load_tail(const uint16_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// One MM×NN tile: MM rows of x against NN rows of w that lie rs rows apart (w + j·rs·K), writing output
// columns j·rs (and reading bias[j·rs]); rs = 1 is a block of adjacent rows.
template <int MM, int NN, typename Fmt>
void tile(const float* x, int64_t ldx, int64_t K, const typename Fmt::T* w, const float* bias, float* y,
          int64_t ldy, int64_t rs = 1) {
  __m512 acc[MM][NN];
  #pragma GCC unroll 8
  for (int i = 0; i < MM; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NN; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 wv[NN];
    #pragma GCC unroll 8
    for (int j = 0; j < NN; ++j) wv[j] = Fmt::load(w + j * rs * K + k);
    #pragma GCC unroll 8
    for (int i = 0; i < MM; ++i) {
      __m512 xv = _mm512_loadu_ps(x + i * ldx + k);
      #pragma GCC unroll 8
      for (int j = 0; j < NN; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1u);
    __m512 wv[NN];
    #pragma GCC unroll 8
    for (int j = 0; j < NN; ++j) wv[j] = Fmt::load_tail(w + j * rs * K + k, mask);
    #pragma GCC unroll 8
    for (int i = 0; i < MM; ++i) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + k);
      #pragma GCC unroll 8
      for (int j = 0; j < NN; ++j) acc[i][j] = _mm512_mask3_fmadd_ps(xv, wv[j], acc[i][j], mask);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < MM; ++i)
    #pragma GCC unroll 8
    for (int j = 0; j < NN; ++j) {
      float s = tree16(acc[i][j]);
      y[i * ldy + j * rs] = bias ? s + bias[j * rs] : s;
    }
}

// All M rows of x against NN weight rows: tiles of 6 rows of x (24 accumulators, 4 weight vectors and x
// in 29 of the 32 registers; each weight vector is loaded and widened once per 6 rows instead of 4),
// then 4, then the rest.
template <int NN, typename Fmt>
void tile_rows(const float* x, int64_t M, int64_t ldx, int64_t K, const typename Fmt::T* w, const float* bias,
               float* y, int64_t ldy, int64_t rs = 1) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) tile<6, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs);
  if (M - m >= 4) {
    tile<4, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs);
    m += 4;
  }
  switch (M - m) {
    case 3: tile<3, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs); break;
    case 2: tile<2, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs); break;
    case 1: tile<1, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs); break;
    default: break;
  }
}

template <typename Fmt>
void linear_avx512(const float* x, int64_t M, int64_t ldx, int64_t K, const void* wv, const float* bias, float* y,
                   int64_t ldy, int64_t n_begin, int64_t n_end) {
  const auto* w = static_cast<const typename Fmt::T*>(wv);
  // A tile's S weight rows are taken Q = range/S rows apart, not adjacent. Adjacent rows of 4 KB (K =
  // 2048 bf16) are S streams 4 KB apart, which share DRAM banks: a decode GEMV moved 60–65 % of what a
  // plain read does on the EPYC (Zen 4), spaced rows ~100 % (bench/README.md); 12 rows gain 8–17 %,
  // 297 rows ~1 %. S = 8 for one row whose x outgrows 16 KB of L1 (x is re-read once per S rows), else 4.
  const bool wide = M == 1 && K * static_cast<int64_t>(sizeof(float)) > 16384;
  const int64_t S = wide ? 8 : 4, Q = (n_end - n_begin) / S;
  for (int64_t r = 0; r < Q; ++r) {
    const int64_t n = n_begin + r;
    if (wide) {
      tile<1, 8, Fmt>(x, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy, Q);
    } else {
      tile_rows<4, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy, Q);
    }
  }
  int64_t n = n_begin + S * Q;  // fewer than S rows left: adjacent tiles
  for (; n + 4 <= n_end; n += 4)
    tile_rows<4, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy);
  switch (n_end - n) {
    case 3: tile_rows<3, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy); break;
    case 2: tile_rows<2, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy); break;
    case 1: tile_rows<1, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy); break;
    default: break;
  }
}

float dot16_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
  if (k < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - k)) - 1u);
    acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + k), _mm512_maskz_loadu_ps(mask, b + k), acc, mask);
  }
  return tree16(acc);
}

}  // namespace

const LinearKernels& linear_kernels_avx512() {
  static const LinearKernels k{linear_avx512<F32Fmt>, linear_avx512<Bf16Fmt>, dot16_avx512};
  return k;
}

}  // namespace la

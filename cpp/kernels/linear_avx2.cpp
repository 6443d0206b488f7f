// AVX2+FMA linear kernels: 16 logical lanes as two 8-wide halves (reduction order in linear.h).
#include <immintrin.h>

#include <cstring>

#include "kernels/linear.h"

namespace la {

namespace {

inline float tree16(__m256 lo, __m256 hi) {
  __m256 s8 = _mm256_add_ps(lo, hi);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

struct F32Fmt {
  using T = float;
  static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  static void tail(const float* p, int64_t len, float* out16) {
    std::memset(out16, 0, 16 * sizeof(float));
    std::memcpy(out16, p, len * sizeof(float));
  }
};

struct Bf16Fmt {
  using T = uint16_t;
  static __m256 load8(const uint16_t* p) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static void tail(const uint16_t* p, int64_t len, float* out16) {
    for (int64_t i = 0; i < 16; ++i) {
      uint32_t u = i < len ? static_cast<uint32_t>(p[i]) << 16 : 0u;
      std::memcpy(out16 + i, &u, 4);
    }
  }
};

// MM rows of x against NN rows of w spaced rs rows apart (output columns j·rs); as in linear_avx512.cpp.
template <int MM, int NN, typename Fmt>
void tile(const float* x, int64_t ldx, int64_t K, const typename Fmt::T* w, const float* bias, float* y,
          int64_t ldy, int64_t rs = 1) {
  __m256 lo[MM][NN], hi[MM][NN];
  #pragma GCC unroll 4
  for (int i = 0; i < MM; ++i)
    #pragma GCC unroll 4
    for (int j = 0; j < NN; ++j) lo[i][j] = hi[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m256 wl[NN], wh[NN];
    #pragma GCC unroll 4
    for (int j = 0; j < NN; ++j) {
      wl[j] = Fmt::load8(w + j * rs * K + k);
      wh[j] = Fmt::load8(w + j * rs * K + k + 8);
    }
    #pragma GCC unroll 4
    for (int i = 0; i < MM; ++i) {
      __m256 xl = _mm256_loadu_ps(x + i * ldx + k), xh = _mm256_loadu_ps(x + i * ldx + k + 8);
      #pragma GCC unroll 4
      for (int j = 0; j < NN; ++j) {
        lo[i][j] = _mm256_fmadd_ps(xl, wl[j], lo[i][j]);
        hi[i][j] = _mm256_fmadd_ps(xh, wh[j], hi[i][j]);
      }
    }
  }
  if (k < K) {
    // Lanes past the end keep their value, as in the scalar twin (blend instead of adding zeros).
    const int64_t len = K - k;
    alignas(32) int32_t mbits[16];
    for (int l = 0; l < 16; ++l) mbits[l] = l < len ? -1 : 0;
    const __m256 ml = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mbits)));
    const __m256 mh = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mbits + 8)));
    alignas(32) float wt[NN][16], xt[16];
    #pragma GCC unroll 4
    for (int j = 0; j < NN; ++j) Fmt::tail(w + j * rs * K + k, len, wt[j]);
    #pragma GCC unroll 4
    for (int i = 0; i < MM; ++i) {
      F32Fmt::tail(x + i * ldx + k, len, xt);
      __m256 xl = _mm256_load_ps(xt), xh = _mm256_load_ps(xt + 8);
      #pragma GCC unroll 4
      for (int j = 0; j < NN; ++j) {
        lo[i][j] = _mm256_blendv_ps(lo[i][j], _mm256_fmadd_ps(xl, _mm256_load_ps(wt[j]), lo[i][j]), ml);
        hi[i][j] = _mm256_blendv_ps(hi[i][j], _mm256_fmadd_ps(xh, _mm256_load_ps(wt[j] + 8), hi[i][j]), mh);
      }
    }
  }
  #pragma GCC unroll 4
  for (int i = 0; i < MM; ++i)
    #pragma GCC unroll 4
    for (int j = 0; j < NN; ++j) {
      float s = tree16(lo[i][j], hi[i][j]);
      y[i * ldy + j * rs] = bias ? s + bias[j * rs] : s;
    }
}

template <int NN, typename Fmt>
void tile_rows(const float* x, int64_t M, int64_t ldx, int64_t K, const typename Fmt::T* w, const float* bias,
               float* y, int64_t ldy, int64_t rs = 1) {
  int64_t m = 0;
  for (; m + 2 <= M; m += 2) tile<2, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs);
  if (m < M) tile<1, NN, Fmt>(x + m * ldx, ldx, K, w, bias, y + m * ldy, ldy, rs);
}

template <typename Fmt>
void linear_avx2(const float* x, int64_t M, int64_t ldx, int64_t K, const void* wv, const float* bias, float* y,
                 int64_t ldy, int64_t n_begin, int64_t n_end) {
  const auto* w = static_cast<const typename Fmt::T*>(wv);
  // Weight rows spaced range/S apart, as in linear_avx512.cpp: S = 4 for one row of x, else 2 (the
  // accumulators that 16 registers hold).
  const int64_t S = M == 1 ? 4 : 2, Q = (n_end - n_begin) / S;
  for (int64_t r = 0; r < Q; ++r) {
    const int64_t n = n_begin + r;
    if (M == 1) {
      tile<1, 4, Fmt>(x, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy, Q);
    } else {
      tile_rows<2, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy, Q);
    }
  }
  int64_t n = n_begin + S * Q;
  for (; n + 2 <= n_end; n += 2) tile_rows<2, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy);
  if (n < n_end) tile_rows<1, Fmt>(x, M, ldx, K, w + n * K, bias ? bias + n : nullptr, y + n, ldy);
}

float dot16_avx2(const float* a, const float* b, int64_t n) {
  float out;
  tile<1, 1, F32Fmt>(a, 0, n, b, nullptr, &out, 0);
  return out;
}

}  // namespace

const LinearKernels& linear_kernels_avx2() {
  static const LinearKernels k{linear_avx2<F32Fmt>, linear_avx2<Bf16Fmt>, dot16_avx2};
  return k;
}

}  // namespace la

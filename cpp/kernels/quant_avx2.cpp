// AVX2 quantised kernels: a 16-row tile as two 8-lane halves, integer block dots with vpmaddubsw
// (exact for these ranges), then the float accumulation order of quant.h.
#include <immintrin.h>

#include <cstring>

#include "core/half.h"
#include "kernels/quant.h"

namespace la {

namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Software prefetch this far ahead keeps enough weight lines in flight to overlap DRAM with compute.
constexpr int kPrefetchBytes = 4096;

inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

inline int32_t hsum8i(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

void quantise_row_avx2(const float* x, int64_t K, ActScale mode, BlockQ8A* out, int64_t stride) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t j = 0; j < K / kQuantActBlock; ++j) {
    const float* xb = x + j * kQuantActBlock;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(xb + 8 * i);
    __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                             _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    const float d = activation_scale(hmax8(a), mode);
    BlockQ8A& b = out[j * stride];
    b.d = d;
    if (d == 0.0f) {
      std::memset(b.q, 0, sizeof(b.q));
      b.offset = 0;
      continue;
    }
    const __m256 dv = _mm256_set1_ps(d);
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = _mm256_max_epi32(nlim, _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_div_ps(v[i], dv))));
    // packs work per 128-bit lane; the permute restores element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.q), _mm256_permutevar8x32_epi32(p, order));
    b.offset = -8 * hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  }
}

// y[8 lanes] of one output row: masked so a padded tail never writes past N.
inline void store_rows8(float* y, __m256 acc, const float* bias, int valid) {
  if (valid >= 8) {
    if (bias) acc = _mm256_add_ps(acc, _mm256_loadu_ps(bias));
    _mm256_storeu_ps(y, acc);
    return;
  }
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (bias) acc = _mm256_add_ps(acc, _mm256_maskload_ps(bias, mask));
  _mm256_maskstore_ps(y, mask, acc);
}

// One sweep along K for rows x[0..MR) (block stride ldx) and the 8-row half h of tile-row `tiles`.
template <int MR, bool Q8, int Units>
void sweep(const BlockQ8A* x, int64_t ldx, int64_t nbs, const uint8_t* tiles, int64_t tile_bytes, int h,
           __m256* acc) {
  const __m256i low4 = _mm256_set1_epi8(0x0f), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nbs; ++b) {
    const uint8_t* tile = tiles + b * tile_bytes;
    if (h == 0)  // the second half re-reads the tile-row from cache
      for (int64_t o = 0; o < tile_bytes; o += 64)
        _mm_prefetch(reinterpret_cast<const char*>(tile + kPrefetchBytes + o), _MM_HINT_T0);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + 16 * h)));
    for (int u = 0; u < Units; ++u) {
      const BlockQ8A* xj = x + (b * Units + u) * ldx;
      __m256i isum[MR];
      if (!Q8) {
        // Σ over 8 k-quads of |code·x| pairs stays below 8·2·15·127 < 2^15: sum in int16, widen once.
        __m256i s16[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) s16[i] = _mm256_setzero_si256();
        const uint8_t* qs = tile + 32 + 256 * u + 32 * h;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 64 * c));
          const __m256i lo = _mm256_and_si256(v, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const int8_t* xq = xj[i].q;
            s16[i] = _mm256_add_epi16(s16[i], _mm256_maddubs_epi16(lo, bcast4(xq + 4 * c)));
            s16[i] = _mm256_add_epi16(s16[i], _mm256_maddubs_epi16(hi, bcast4(xq + 16 + 4 * c)));
          }
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
          isum[i] = _mm256_add_epi32(_mm256_madd_epi16(s16[i], ones), _mm256_set1_epi32(xj[i].offset));
      } else {
        // Signed codes via the sign trick: |w|·(x·sign w) keeps every pair below 2^15.
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) isum[i] = _mm256_setzero_si256();
        const uint8_t* qs = tile + 32 + 32 * h;
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
          const __m256i ws =
              _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 64 * t)), flip);
          const __m256i wa = _mm256_abs_epi8(ws);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const __m256i p = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(bcast4(xj[i].q + 4 * t), ws));
            isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(p, ones));
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_mul_ps(dw, _mm256_set1_ps(xj[i].d)), acc[i]);
    }
  }
}

template <int MR, bool Q8, int Units>
void tile_rows(const BlockQ8A* x, int64_t M, int64_t m0, int64_t nb, const uint8_t* tiles, int64_t tile_bytes,
               const float* bias, float* y, int64_t ldy, int64_t n0, int64_t N) {
  for (int h = 0; h < 2; ++h) {
    const int valid = static_cast<int>(N - n0 - 8 * h);
    if (valid <= 0) break;
    __m256 acc[MR];
    sweep<MR, Q8, Units>(x + m0, M, nb / Units, tiles, tile_bytes, h, acc);
    for (int i = 0; i < MR; ++i)
      store_rows8(y + (m0 + i) * ldy + n0 + 8 * h, acc[i], bias ? bias + n0 + 8 * h : nullptr, valid);
  }
}

constexpr int kMaxPass = 4;  // rows per sweep: 16 vector registers hold 4 rows' accumulators

template <bool Q8, int Units>
void rows_avx2(const BlockQ8A* x, int64_t M, int64_t nb, const void* wv, const float* bias, float* y, int64_t ldy,
               int64_t N, int64_t t0, int64_t t1) {
  const int64_t tile_bytes = Q8 ? sizeof(TileQ8x32) : (Units == 4 ? sizeof(TileQ4x128) : sizeof(TileQ4x32));
  const int64_t row_bytes = nb / Units * tile_bytes;
  const int64_t passes = (M + kMaxPass - 1) / kMaxPass;
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tiles = static_cast<const uint8_t*>(wv) + t * row_bytes;
    int64_t m0 = 0;
    for (int64_t p = 0; p < passes; ++p) {
      const int64_t mr = (M - m0) / (passes - p) + ((M - m0) % (passes - p) ? 1 : 0);
      switch (mr) {
        case 1: tile_rows<1, Q8, Units>(x, M, m0, nb, tiles, tile_bytes, bias, y, ldy, 16 * t, N); break;
        case 2: tile_rows<2, Q8, Units>(x, M, m0, nb, tiles, tile_bytes, bias, y, ldy, 16 * t, N); break;
        case 3: tile_rows<3, Q8, Units>(x, M, m0, nb, tiles, tile_bytes, bias, y, ldy, 16 * t, N); break;
        default: tile_rows<4, Q8, Units>(x, M, m0, nb, tiles, tile_bytes, bias, y, ldy, 16 * t, N); break;
      }
      m0 += mr;
    }
  }
}

void widen_bf16_avx2(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

}  // namespace

const QuantKernels& quant_kernels_avx2() {
  // Weight quantisation is a one-off at load time: the scalar twin serves AVX2 machines.
  static const QuantKernels k{quant_kernels_scalar().quantise_weights, widen_bf16_avx2, quantise_row_avx2,
                              {rows_avx2<false, 1>, rows_avx2<false, 4>, rows_avx2<true, 1>},
                              nullptr};
  return k;
}

}  // namespace la

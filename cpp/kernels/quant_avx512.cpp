// AVX-512 quantised kernels: one 16-row tile per zmm, integer block dots by vpmaddubsw (AVX-512BW) or
// vpdpbusd (VNNI, through target attributes), the float accumulation order of quant.h, and the
// panel-unpacking GEMM for large M.
#include <immintrin.h>

#include <cstring>

#include "core/half.h"
#include "kernels/quant.h"

#define LA_VNNI __attribute__((target("avx512vnni")))

namespace la {

namespace {

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }

// Weights stream from DRAM while the core is busy with up to 12 rows; a software prefetch this far
// ahead keeps enough lines in flight (≈ latency × bandwidth) that compute and transfer overlap.
constexpr int kPrefetchBytes = 4096;
inline void prefetch_block(const uint8_t* p, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64)
    _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + o), _MM_HINT_T0);
}

void quantise_row_avx512(const float* x, int64_t K, ActScale mode, BlockQ8A* out, int64_t stride) {
  const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
  for (int64_t j = 0; j < K / kQuantActBlock; ++j) {
    const float* xb = x + j * kQuantActBlock;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float d = activation_scale(_mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))), mode);
    BlockQ8A& b = out[j * stride];
    b.d = d;
    if (d == 0.0f) {
      std::memset(b.q, 0, sizeof(b.q));
      b.offset = 0;
      continue;
    }
    const __m512 dv = _mm512_set1_ps(d);
    const __m512i q0 = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_div_ps(v0, dv))));
    const __m512i q1 = _mm512_max_epi32(nlim, _mm512_min_epi32(lim, _mm512_cvtps_epi32(_mm512_div_ps(v1, dv))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q + 16), _mm512_cvtepi32_epi8(q1));
    b.offset = -8 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

// The scalar twin's weight quantiser, 16 elements at a time (same first-largest element, same fp16
// scale, same RNE division, so the same bytes); codes are written straight into the tile layout.
void quantise_weights_avx512(const float* v, QuantFormat fmt, uint8_t* tile, int r) {
  const int nv = fmt == QuantFormat::Q4_128 ? 8 : 2;
  const bool q8 = fmt == QuantFormat::Q8_32;
  __m512 x[8];
  __m512 amaxv = _mm512_setzero_ps();
  for (int k = 0; k < nv; ++k) {
    x[k] = _mm512_loadu_ps(v + 16 * k);
    amaxv = _mm512_max_ps(amaxv, _mm512_abs_ps(x[k]));
  }
  const float amax = _mm512_reduce_max_ps(amaxv);
  float m = 0.0f;  // as the scalar loop: stays +0 for an all-zero block
  if (!q8 && amax > 0.0f)
    for (int k = 0; k < nv; ++k) {
      const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(x[k]), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (hit) {
        m = v[16 * k + __builtin_ctz(hit)];
        break;
      }
    }
  const uint16_t d16 = f32_to_f16(q8 ? amax / 127.0f : m / -8.0f);
  std::memcpy(tile + 2 * r, &d16, 2);
  const float d = f16_to_f32(d16);
  const __m512i lo = _mm512_set1_epi32(q8 ? -127 : -8), hi = _mm512_set1_epi32(q8 ? 127 : 7);
  const __m512i bias = _mm512_set1_epi32(q8 ? 128 : 8);
  __m128i codes[8];
  for (int k = 0; k < nv; ++k) {
    __m512i q = _mm512_setzero_si512();
    if (d != 0.0f)
      q = _mm512_max_epi32(lo, _mm512_min_epi32(hi, _mm512_cvtps_epi32(_mm512_div_ps(x[k], _mm512_set1_ps(d)))));
    codes[k] = _mm512_cvtepi32_epi8(_mm512_add_epi32(q, bias));
  }
  uint8_t* qs = tile + 32;
  alignas(16) uint32_t words[4];
  if (q8) {
    for (int k = 0; k < 2; ++k) {
      _mm_store_si128(reinterpret_cast<__m128i*>(words), codes[k]);
      for (int c = 0; c < 4; ++c) std::memcpy(qs + 64 * (4 * k + c) + 4 * r, &words[c], 4);
    }
    return;
  }
  for (int u = 0; u < nv / 2; ++u) {
    // Codes are below 16, so a 16-bit shift moves each high code within its own byte.
    const __m128i packed = _mm_or_si128(codes[2 * u], _mm_slli_epi16(codes[2 * u + 1], 4));
    _mm_store_si128(reinterpret_cast<__m128i*>(words), packed);
    for (int c = 0; c < 4; ++c) std::memcpy(qs + 256 * u + 64 * c + 4 * r, &words[c], 4);
  }
}

// y[16 columns] of one output row, masked so a padded tile never writes past N.
inline void store_row16(float* y, __m512 acc, const float* bias, int valid) {
  const __mmask16 mask = valid >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << valid) - 1u);
  if (bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(mask, bias));
  _mm512_mask_storeu_ps(y, mask, acc);
}

// acc += float(isum) · (d_w · d_x): the one float step per block (quant.h). Q8 weights take Max
// activation scales: a float multiply. Q4 weights take Pow2 scales, d_x = 2^e, so the exact product
// is d_w with e added to its exponent field: an integer add, which leaves the FMA pipes to vpdpbusd
// where a vmulps would take a slot of its own. WScale holds d_w, its bits less the bits of 1.0 (once
// per block, for all rows: adding d_x's own bits then adds e), and the lanes where d_w ≠ 0 (a zero
// must stay zero, whatever e is).
struct WScale {
  __m512 f;
  __m512i bits;
  __mmask16 nonzero;
};
inline WScale wscale(__m512 dw) {
  const __m512i bits = _mm512_castps_si512(dw);
  return {dw, _mm512_sub_epi32(bits, _mm512_set1_epi32(0x3f800000)),
          _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x7fffffff))};
}
template <bool Q8>
inline __m512 accumulate(__m512 acc, __m512i isum, const WScale& dw, __m512 dx) {
  const __m512 scale = Q8 ? _mm512_mul_ps(dw.f, dx)
                          : _mm512_castsi512_ps(_mm512_maskz_add_epi32(dw.nonzero, dw.bits, _mm512_castps_si512(dx)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc);
}

template <bool Q8, int Units>
constexpr int64_t tile_bytes() {
  return Q8 ? sizeof(TileQ8x32) : (Units == 4 ? sizeof(TileQ4x128) : sizeof(TileQ4x32));
}

// ---- rows kernels (weights unpacked in registers; decode and MTP) ----------------------------

// Without VNNI: int16 partial sums of vpmaddubsw (Q4), or the sign trick (Q8); see quant_avx2.cpp.
template <int MR, bool Q8, int Units>
void sweep_bw(const BlockQ8A* x, int64_t ldx, int64_t nbs, const uint8_t* tiles, __m512* acc) {
  const __m512i low4 = _mm512_set1_epi8(0x0f), flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i ones = _mm512_set1_epi16(1), zero = _mm512_setzero_si512();
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nbs; ++b) {
    const uint8_t* tile = tiles + b * tile_bytes<Q8, Units>();
    prefetch_block(tile, tile_bytes<Q8, Units>());
    const WScale dw = wscale(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile))));
    for (int u = 0; u < Units; ++u) {
      const BlockQ8A* xj = x + (b * Units + u) * ldx;
      __m512i isum[MR];
      if (!Q8) {
        __m512i s16[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) s16[i] = _mm512_setzero_si512();
        const uint8_t* qs = tile + 32 + 256 * u;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const __m512i v = load64(qs + 64 * c);
          const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const int8_t* xq = xj[i].q;
            s16[i] = _mm512_add_epi16(s16[i], _mm512_maddubs_epi16(lo, bcast4(xq + 4 * c)));
            s16[i] = _mm512_add_epi16(s16[i], _mm512_maddubs_epi16(hi, bcast4(xq + 16 + 4 * c)));
          }
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
          isum[i] = _mm512_add_epi32(_mm512_madd_epi16(s16[i], ones), _mm512_set1_epi32(xj[i].offset));
      } else {
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) isum[i] = _mm512_setzero_si512();
        const uint8_t* qs = tile + 32;
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
          const __m512i ws = _mm512_xor_si512(load64(qs + 64 * t), flip);
          const __m512i wa = _mm512_abs_epi8(ws);
          const __mmask64 neg = _mm512_movepi8_mask(ws);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const __m512i xb = bcast4(xj[i].q + 4 * t);
            const __m512i p = _mm512_maddubs_epi16(wa, _mm512_mask_sub_epi8(xb, neg, zero, xb));
            isum[i] = _mm512_add_epi32(isum[i], _mm512_madd_epi16(p, ones));
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) acc[i] = accumulate<Q8>(acc[i], isum[i], dw, _mm512_set1_ps(xj[i].d));
    }
  }
}

// With VNNI: unsigned codes straight into vpdpbusd, the accumulator starting at the activation
// block's offset (×16 for Q8's +128 codes) so the dot comes out signed.
template <int MR, bool Q8, int Units>
LA_VNNI void sweep_vnni(const BlockQ8A* x, int64_t ldx, int64_t nbs, const uint8_t* tiles, __m512* acc) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nbs; ++b) {
    const uint8_t* tile = tiles + b * tile_bytes<Q8, Units>();
    prefetch_block(tile, tile_bytes<Q8, Units>());
    const WScale dw = wscale(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile))));
    for (int u = 0; u < Units; ++u) {
      const BlockQ8A* xj = x + (b * Units + u) * ldx;
      __m512i isum[MR];
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) isum[i] = _mm512_set1_epi32(Q8 ? xj[i].offset * 16 : xj[i].offset);
      if (!Q8) {
        const uint8_t* qs = tile + 32 + 256 * u;
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const __m512i v = load64(qs + 64 * c);
          const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
          // All rows' low quads, then all rows' high quads: a row's next step is issued a full
          // vpdpbusd latency later, so the chains interleave instead of stalling.
#pragma GCC unroll 12
          for (int i = 0; i < MR; ++i) isum[i] = _mm512_dpbusd_epi32(isum[i], lo, bcast4(xj[i].q + 4 * c));
#pragma GCC unroll 12
          for (int i = 0; i < MR; ++i) isum[i] = _mm512_dpbusd_epi32(isum[i], hi, bcast4(xj[i].q + 16 + 4 * c));
        }
      } else {
        const uint8_t* qs = tile + 32;
#pragma GCC unroll 8
        for (int t = 0; t < 8; ++t) {
          const __m512i wv = load64(qs + 64 * t);
#pragma GCC unroll 12
          for (int i = 0; i < MR; ++i) isum[i] = _mm512_dpbusd_epi32(isum[i], wv, bcast4(xj[i].q + 4 * t));
        }
      }
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) acc[i] = accumulate<Q8>(acc[i], isum[i], dw, _mm512_set1_ps(xj[i].d));
    }
  }
}

template <int MR, bool Vnni, bool Q8, int Units>
void tile_rows(const BlockQ8A* x, int64_t M, int64_t m0, int64_t nb, const uint8_t* tiles, const float* bias,
               float* y, int64_t ldy, int64_t n0, int64_t N) {
  __m512 acc[MR];
  if (Vnni) {
    sweep_vnni<MR, Q8, Units>(x + m0, M, nb / Units, tiles, acc);
  } else {
    sweep_bw<MR, Q8, Units>(x + m0, M, nb / Units, tiles, acc);
  }
  const int valid = static_cast<int>(N - n0 < 16 ? N - n0 : 16);
  for (int i = 0; i < MR; ++i) store_row16(y + (m0 + i) * ldy + n0, acc[i], bias ? bias + n0 : nullptr, valid);
}

template <bool Vnni, bool Q8, int Units>
void rows_avx512(const BlockQ8A* x, int64_t M, int64_t nb, const void* wv, const float* bias, float* y,
                 int64_t ldy, int64_t N, int64_t t0, int64_t t1) {
  // Rows per sweep: VNNI needs one accumulator pair per row, the int16 path a third register.
  constexpr int kMaxPass = Vnni ? 12 : 6;
  const int64_t row_bytes = nb / Units * tile_bytes<Q8, Units>();
  const int64_t passes = (M + kMaxPass - 1) / kMaxPass;
  for (int64_t t = t0; t < t1; ++t) {
    const uint8_t* tiles = static_cast<const uint8_t*>(wv) + t * row_bytes;
    int64_t m0 = 0;
    for (int64_t p = 0; p < passes; ++p) {
      const int64_t mr = (M - m0) / (passes - p) + ((M - m0) % (passes - p) ? 1 : 0);
#define LA_ROWS_CASE(R) \
  case R: tile_rows<(R <= kMaxPass ? R : 1), Vnni, Q8, Units>(x, M, m0, nb, tiles, bias, y, ldy, 16 * t, N); break;
      switch (mr) {
        LA_ROWS_CASE(1)
        LA_ROWS_CASE(2)
        LA_ROWS_CASE(3)
        LA_ROWS_CASE(4)
        LA_ROWS_CASE(5)
        LA_ROWS_CASE(6)
        LA_ROWS_CASE(7)
        LA_ROWS_CASE(8)
        LA_ROWS_CASE(9)
        LA_ROWS_CASE(10)
        LA_ROWS_CASE(11)
        LA_ROWS_CASE(12)
        default: break;
      }
#undef LA_ROWS_CASE
      m0 += mr;
    }
  }
}

// ---- panel GEMM (VNNI; prefill) --------------------------------------------------------------
//
// Loop order: panel of `panel` tile-rows → chunk of up to kGemmChunk blocks along K → rows of x in
// micro-tiles of 6 → pairs of tile-rows. A chunk of the panel is unpacked once into `scratch`
//   codes  uint8 [np][kc][8 k-quads][16 rows][4]   unsigned codes, as vpdpbusd reads them
//   scales float [np][kc][16]                      d_w per row (replicated per 32 for Q4_128)
// and then read by every row of x. Between chunks the running sums wait in y (a float store and
// reload is exact), so the order of quant.h holds while the panel stays L2-sized for any K, and a
// wide panel keeps the re-reads of x few.

constexpr int64_t kGemmChunk = 64;  // blocks of 32 along K per unpacked chunk (2048 elements)
constexpr int kGemmMR = 6;          // rows per micro-tile: 12 int + 12 float accumulators + 2 weights

template <bool Q8, int Units>
void unpack_chunk(const uint8_t* tiles, int64_t row_bytes, int64_t np, int64_t j0, int64_t kc, uint8_t* codes,
                  float* scales) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int64_t p = 0; p < np; ++p)
    for (int64_t jl = 0; jl < kc; jl += Units) {
      const uint8_t* tile = tiles + p * row_bytes + (j0 + jl) / Units * tile_bytes<Q8, Units>();
      const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile)));
      for (int u = 0; u < Units; ++u) {
        uint8_t* dst = codes + (p * kc + jl + u) * 512;
        if (Q8) {
          std::memcpy(dst, tile + 32, 512);
        } else {
          for (int c = 0; c < 4; ++c) {
            const __m512i v = load64(tile + 32 + 256 * u + 64 * c);
            _mm512_store_si512(dst + 64 * c, _mm512_and_si512(v, low4));
            _mm512_store_si512(dst + 64 * (c + 4), _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
          }
        }
        _mm512_store_ps(scales + (p * kc + jl + u) * 16, dw);
      }
    }
}

// MR rows × NR tile-rows over the kc blocks of one chunk (x points at the chunk's first block).
// first: start from +0, else from the partial sums in y; last: add the bias and finish.
template <int MR, int NR, bool Q8>
LA_VNNI void gemm_micro(const BlockQ8A* x, int64_t ldx, int64_t kc, const uint8_t* codes, const float* scales,
                        bool first, bool last, const float* bias, float* y, int64_t ldy, int64_t n0, int64_t N) {
  int valid[NR];
  for (int p = 0; p < NR; ++p) valid[p] = static_cast<int>(N - n0 - 16 * p < 16 ? N - n0 - 16 * p : 16);
  __m512 acc[MR][NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int p = 0; p < NR; ++p) {
      const __mmask16 mask = static_cast<__mmask16>((1u << valid[p]) - 1u);
      acc[i][p] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, y + i * ldy + n0 + 16 * p);
    }
  for (int64_t j = 0; j < kc; ++j) {
    const BlockQ8A* xj = x + j * ldx;
    __m512i s[MR][NR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512i off = _mm512_set1_epi32(xj[i].offset);
      const __m512i init = Q8 ? _mm512_slli_epi32(off, 4) : off;  // +128 codes: 16 × (−8·Σq)
#pragma GCC unroll 2
      for (int p = 0; p < NR; ++p) s[i][p] = init;
    }
    const uint8_t* cj = codes + j * 512;
#pragma GCC unroll 8
    for (int t = 0; t < 8; ++t) {
      __m512i wv[NR];
#pragma GCC unroll 2
      for (int p = 0; p < NR; ++p) wv[p] = _mm512_load_si512(cj + p * kc * 512 + 64 * t);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m512i xb = bcast4(xj[i].q + 4 * t);
#pragma GCC unroll 2
        for (int p = 0; p < NR; ++p) s[i][p] = _mm512_dpbusd_epi32(s[i][p], wv[p], xb);
      }
    }
    WScale dw[NR];
#pragma GCC unroll 2
    for (int p = 0; p < NR; ++p) dw[p] = wscale(_mm512_load_ps(scales + (p * kc + j) * 16));
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 dx = _mm512_set1_ps(xj[i].d);
#pragma GCC unroll 2
      for (int p = 0; p < NR; ++p) acc[i][p] = accumulate<Q8>(acc[i][p], s[i][p], dw[p], dx);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int p = 0; p < NR; ++p) {
      const int64_t n = n0 + 16 * p;
      store_row16(y + i * ldy + n, acc[i][p], last && bias ? bias + n : nullptr, valid[p]);
    }
}

template <int NR, bool Q8>
void gemm_rows(int64_t mr, const BlockQ8A* x, int64_t ldx, int64_t kc, const uint8_t* codes, const float* scales,
               bool first, bool last, const float* bias, float* y, int64_t ldy, int64_t n0, int64_t N) {
  switch (mr) {
#define LA_GEMM_CASE(R) \
  case R: gemm_micro<R, NR, Q8>(x, ldx, kc, codes, scales, first, last, bias, y, ldy, n0, N); break;
    LA_GEMM_CASE(1)
    LA_GEMM_CASE(2)
    LA_GEMM_CASE(3)
    LA_GEMM_CASE(4)
    LA_GEMM_CASE(5)
    LA_GEMM_CASE(6)
#undef LA_GEMM_CASE
    default: break;
  }
}

void gemm_vnni(const BlockQ8A* x, int64_t M, int64_t nb, const void* wv, QuantFormat fmt, const float* bias,
               float* y, int64_t ldy, int64_t N, int64_t t0, int64_t t1, void* scratch, int64_t panel) {
  const int64_t row_bytes = nb * 32 / quant_block_size(fmt) * quant_tile_bytes(fmt);
  const int64_t chunk = nb < kGemmChunk ? nb : kGemmChunk;  // a multiple of 4: Q4_128 tiles stay whole
  uint8_t* codes = static_cast<uint8_t*>(scratch);
  float* scales = reinterpret_cast<float*>(codes + panel * chunk * 512);
  const bool q8 = fmt == QuantFormat::Q8_32;
  for (int64_t pt = t0; pt < t1; pt += panel) {
    const int64_t np = pt + panel <= t1 ? panel : t1 - pt;
    const uint8_t* tiles = static_cast<const uint8_t*>(wv) + pt * row_bytes;
    for (int64_t j0 = 0; j0 < nb; j0 += chunk) {
      const int64_t kc = nb - j0 < chunk ? nb - j0 : chunk;
      switch (fmt) {
        case QuantFormat::Q4_32: unpack_chunk<false, 1>(tiles, row_bytes, np, j0, kc, codes, scales); break;
        case QuantFormat::Q4_128: unpack_chunk<false, 4>(tiles, row_bytes, np, j0, kc, codes, scales); break;
        case QuantFormat::Q8_32: unpack_chunk<true, 1>(tiles, row_bytes, np, j0, kc, codes, scales); break;
      }
      const bool first = j0 == 0, last = j0 + kc == nb;
      for (int64_t m0 = 0; m0 < M; m0 += kGemmMR) {
        const int64_t mr = M - m0 < kGemmMR ? M - m0 : kGemmMR;
        const BlockQ8A* xm = x + j0 * M + m0;
        float* ym = y + m0 * ldy;
        for (int64_t p0 = 0; p0 < np; p0 += 2) {
          const uint8_t* c = codes + p0 * kc * 512;
          const float* s = scales + p0 * kc * 16;
          const int64_t n0 = 16 * (pt + p0);
          if (p0 + 2 <= np) {
            (q8 ? gemm_rows<2, true> : gemm_rows<2, false>)(mr, xm, M, kc, c, s, first, last, bias, ym, ldy, n0, N);
          } else {
            (q8 ? gemm_rows<1, true> : gemm_rows<1, false>)(mr, xm, M, kc, c, s, first, last, bias, ym, ldy, n0, N);
          }
        }
      }
    }
  }
}

void widen_bf16_avx512(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

}  // namespace

const QuantKernels& quant_kernels_avx512() {
  static const QuantKernels k{
      quantise_weights_avx512, widen_bf16_avx512, quantise_row_avx512,
      {rows_avx512<false, false, 1>, rows_avx512<false, false, 4>, rows_avx512<false, true, 1>},
      nullptr};
  return k;
}

const QuantKernels& quant_kernels_avx512_vnni() {
  static const QuantKernels k{
      quantise_weights_avx512, widen_bf16_avx512, quantise_row_avx512,
      {rows_avx512<true, false, 1>, rows_avx512<true, false, 4>, rows_avx512<true, true, 1>},
      gemm_vnni};
  return k;
}

}  // namespace la

// Quantised formats (quantise, dequantise, GPTQ repack) and the dispatch + thread split of the
// quantised linear kernels.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/half.h"
#include "core/scratch.h"
#include "core/thread_pool.h"

namespace la {

namespace {

constexpr int64_t kPanelBytesPerBlock = 16 * 32 + 16 * 4;  // int8 codes + float scales, one tile-row block

void check_format(QuantFormat fmt) {
  LA_CHECK(fmt == QuantFormat::Q4_32 || fmt == QuantFormat::Q4_128 || fmt == QuantFormat::Q8_32, InvalidArgument,
           "unknown quantised format ", static_cast<int>(fmt));
}

void check_shape(QuantFormat fmt, int64_t N, int64_t K, const char* what) {
  check_format(fmt);
  const int64_t B = quant_block_size(fmt);
  LA_CHECK(N >= 0 && K > 0 && K % B == 0, InvalidArgument, what, ": K = ", K, " must be a positive multiple of ", B,
           " for ", quant_format_name(fmt), " (N = ", N, ")");
}

// Codes of one tile (16 rows × B elements, unsigned storage codes) → the tile's byte layout.
void pack_tile(QuantFormat fmt, const uint8_t* codes /*[16][B]*/, const uint16_t* d /*[16]*/, uint8_t* out) {
  const int B = static_cast<int>(quant_block_size(fmt));
  std::memcpy(out, d, 32);
  uint8_t* qs = out + 32;
  if (fmt == QuantFormat::Q8_32) {
    for (int t = 0; t < 8; ++t)
      for (int r = 0; r < 16; ++r)
        for (int j = 0; j < 4; ++j) qs[64 * t + 4 * r + j] = codes[r * B + 4 * t + j];
    return;
  }
  for (int u = 0; u < B / 32; ++u)
    for (int c = 0; c < 4; ++c)
      for (int r = 0; r < 16; ++r)
        for (int j = 0; j < 4; ++j) {
          const uint8_t lo = codes[r * B + 32 * u + 4 * c + j];
          const uint8_t hi = codes[r * B + 32 * u + 16 + 4 * c + j];
          qs[256 * u + 64 * c + 4 * r + j] = static_cast<uint8_t>(lo | (hi << 4));
        }
}

// Row r of one tile → out[B] = (q − 8)·d (Q8: q·d); exact, the products have at most 15 significant bits.
void dequantise_tile_row(QuantFormat fmt, const uint8_t* tile, int r, float* out) {
  uint16_t d16;
  std::memcpy(&d16, tile + 2 * r, 2);
  const float d = f16_to_f32(d16);
  const uint8_t* qs = tile + 32;
  if (fmt == QuantFormat::Q8_32) {
    for (int t = 0; t < 8; ++t)
      for (int j = 0; j < 4; ++j) out[4 * t + j] = static_cast<float>(qs[64 * t + 4 * r + j] - 128) * d;
    return;
  }
  for (int u = 0; u < quant_block_size(fmt) / 32; ++u)
    for (int c = 0; c < 4; ++c)
      for (int j = 0; j < 4; ++j) {
        const uint8_t v = qs[256 * u + 64 * c + 4 * r + j];
        out[32 * u + 4 * c + j] = static_cast<float>((v & 0x0f) - 8) * d;
        out[32 * u + 16 + 4 * c + j] = static_cast<float>((v >> 4) - 8) * d;
      }
}

// Row n of a quantised [N, K] matrix → out[K].
void dequantise_row(const uint8_t* w, QuantFormat fmt, int64_t K, int64_t n, float* out) {
  const int64_t B = quant_block_size(fmt), nbs = K / B, tile_bytes = quant_tile_bytes(fmt);
  const uint8_t* tiles = w + (n / 16) * nbs * tile_bytes;
  for (int64_t b = 0; b < nbs; ++b)
    dequantise_tile_row(fmt, tiles + b * tile_bytes, static_cast<int>(n % 16), out + b * B);
}

// `block(n, k0, buf)` returns the B floats of row n from column k0, converted into buf if need be.
template <typename Block>
void quantise_weights_impl(Block block, int64_t N, int64_t K, QuantFormat fmt, void* out) {
  const int64_t B = quant_block_size(fmt), nbs = K / B, tiles = (N + 15) / 16, tile_bytes = quant_tile_bytes(fmt);
  QuantiseWeightsKernel kernel = quant_kernels(active_isa()).quantise_weights;
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    std::unique_ptr<float[]> buf(new float[B]), zeros(new float[B]());  // zeros: padding rows get d = 0
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t b = 0; b < nbs; ++b) {
        uint8_t* tile = static_cast<uint8_t*>(out) + (t * nbs + b) * tile_bytes;
        for (int r = 0; r < 16; ++r) {
          const int64_t n = 16 * t + r;
          kernel(n < N ? block(n, b * B, buf.get()) : zeros.get(), fmt, tile, r);
        }
      }
  });
}

}  // namespace

const char* quant_format_name(QuantFormat fmt) {
  switch (fmt) {
    case QuantFormat::Q4_32: return "q4_32";
    case QuantFormat::Q4_128: return "q4_128";
    case QuantFormat::Q8_32: return "q8_32";
  }
  return "?";
}

int64_t quant_block_size(QuantFormat fmt) { return fmt == QuantFormat::Q4_128 ? 128 : 32; }

int64_t quant_tile_bytes(QuantFormat fmt) {
  switch (fmt) {
    case QuantFormat::Q4_32: return sizeof(TileQ4x32);
    case QuantFormat::Q4_128: return sizeof(TileQ4x128);
    case QuantFormat::Q8_32: return sizeof(TileQ8x32);
  }
  return 0;
}

int64_t quant_matrix_bytes(QuantFormat fmt, int64_t N, int64_t K) {
  check_shape(fmt, N, K, "quant_matrix_bytes");
  return (N + 15) / 16 * (K / quant_block_size(fmt)) * quant_tile_bytes(fmt);
}

int64_t quant_gemm_scratch_bytes(int64_t nb, int64_t panel_tiles) { return panel_tiles * nb * kPanelBytesPerBlock; }

void quantise_weights(const float* w, int64_t N, int64_t K, int64_t ldw, QuantFormat fmt, void* out) {
  check_shape(fmt, N, K, "quantise_weights");
  LA_CHECK(ldw >= K, InvalidArgument, "quantise_weights: row stride ", ldw, " is below K = ", K);
  quantise_weights_impl([&](int64_t n, int64_t k0, float*) { return w + n * ldw + k0; }, N, K, fmt, out);
}

void quantise_weights_bf16(const uint16_t* w, int64_t N, int64_t K, int64_t ldw, QuantFormat fmt, void* out) {
  check_shape(fmt, N, K, "quantise_weights_bf16");
  LA_CHECK(ldw >= K, InvalidArgument, "quantise_weights_bf16: row stride ", ldw, " is below K = ", K);
  const int64_t B = quant_block_size(fmt);
  WidenBf16Kernel widen = quant_kernels(active_isa()).widen_bf16;
  quantise_weights_impl(
      [&](int64_t n, int64_t k0, float* buf) {
        widen(w + n * ldw + k0, B, buf);
        return static_cast<const float*>(buf);
      },
      N, K, fmt, out);
}

void dequantise_weights(const void* w, QuantFormat fmt, int64_t N, int64_t K, int64_t n_begin, int64_t n_end,
                        float* out) {
  check_shape(fmt, N, K, "dequantise_weights");
  LA_CHECK(0 <= n_begin && n_begin <= n_end && n_end <= N, InvalidArgument, "dequantise_weights: rows [", n_begin,
           ", ", n_end, ") are outside [0, ", N, ")");
  parallel_for(n_end - n_begin, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dequantise_row(static_cast<const uint8_t*>(w), fmt, K, n_begin + i, out + i * K);
  });
}

void dequantise_rows(const void* w, QuantFormat fmt, int64_t N, int64_t K, const int32_t* ids, int64_t n_ids,
                     float* out, int64_t ldo) {
  check_shape(fmt, N, K, "dequantise_rows");
  LA_CHECK(ldo >= K, InvalidArgument, "dequantise_rows: output row stride ", ldo, " is below K = ", K);
  for (int64_t i = 0; i < n_ids; ++i)
    LA_CHECK(ids[i] >= 0 && ids[i] < N, InvalidArgument, "dequantise_rows: id ", ids[i], " at position ", i,
             " is outside the table's ", N, " rows");
  parallel_for(n_ids, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dequantise_row(static_cast<const uint8_t*>(w), fmt, K, ids[i], out + i * ldo);
  });
}

void repack_gptq_q4(const int32_t* qweight, const uint16_t* scales, int64_t K, int64_t N, int64_t group,
                    void* out) {
  LA_CHECK(group == 32 || group == 128, InvalidArgument, "repack_gptq_q4: group size ", group,
           " is not supported (32 or 128)");
  const QuantFormat fmt = group == 32 ? QuantFormat::Q4_32 : QuantFormat::Q4_128;
  check_shape(fmt, N, K, "repack_gptq_q4");
  const int B = static_cast<int>(group);
  const int64_t nbs = K / B, tiles = (N + 15) / 16, tile_bytes = quant_tile_bytes(fmt);
  parallel_for(tiles, 1, [&](int64_t t0, int64_t t1) {
    std::unique_ptr<uint8_t[]> codes(new uint8_t[16 * B]);
    uint16_t d[16];
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t b = 0; b < nbs; ++b) {
        for (int r = 0; r < 16; ++r) {
          const int64_t n = 16 * t + r;
          if (n >= N) {
            std::memset(codes.get() + r * B, 8, B);
            d[r] = 0;
            continue;
          }
          d[r] = scales[b * N + n];
          for (int i = 0; i < B; ++i) {
            const int64_t k = b * B + i;
            const uint32_t word = static_cast<uint32_t>(qweight[(k / 8) * N + n]);
            codes[r * B + i] = static_cast<uint8_t>((word >> (4 * (k % 8))) & 0x0fu);
          }
        }
        pack_tile(fmt, codes.get(), d, static_cast<uint8_t*>(out) + (t * nbs + b) * tile_bytes);
      }
  });
}

const QuantKernels& quant_kernels(Isa isa) {
  return *pick_isa<const QuantKernels*>(isa, {{Isa::Avx512Vnni, &quant_kernels_avx512_vnni()},
                                              {Isa::Avx512, &quant_kernels_avx512()},
                                              {Isa::Avx2, &quant_kernels_avx2()},
                                              {Isa::Scalar, &quant_kernels_scalar()}});
}

void quantise_activations(const float* x, int64_t M, int64_t K, int64_t ldx, ActScale mode, BlockQ8A* out) {
  LA_CHECK(K > 0 && K % kQuantActBlock == 0, InvalidArgument, "quantise_activations: K = ", K,
           " must be a positive multiple of ", kQuantActBlock);
  LA_CHECK(ldx >= K, InvalidArgument, "quantise_activations: row stride ", ldx, " is below K = ", K);
  if (M <= 0) return;
  QuantiseRowKernel kernel = quant_kernels(active_isa()).quantise_row;
  const int64_t grain = std::max<int64_t>(1, 65536 / K);
  parallel_for(M, grain, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) kernel(x + m * ldx, K, mode, out + m, M);
  });
}

void dequantise_activations(const BlockQ8A* xq, int64_t M, int64_t K, float* out) {
  LA_CHECK(K > 0 && K % kQuantActBlock == 0, InvalidArgument, "dequantise_activations: K = ", K,
           " must be a positive multiple of ", kQuantActBlock);
  const int64_t nb = K / kQuantActBlock;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < nb; ++j)
      for (int i = 0; i < kQuantActBlock; ++i)
        out[m * K + j * kQuantActBlock + i] = static_cast<float>(xq[j * M + m].q[i]) * xq[j * M + m].d;
}

void quant_linear(const BlockQ8A* xq, int64_t M, int64_t K, const void* w, QuantFormat fmt, int64_t N,
                  const float* bias, float* y, int64_t ldy) {
  check_shape(fmt, N, K, "quant_linear");
  LA_CHECK(ldy >= N, InvalidArgument, "quant_linear: output row stride ", ldy, " is below N = ", N);
  if (M <= 0 || N <= 0) return;
  const int64_t nb = K / kQuantActBlock, tiles = (N + 15) / 16;
  if (activation_scale_for(fmt) == ActScale::Pow2) {
    // The Q4 kernels add d_x's exponent to d_w instead of multiplying: anything but a power of two
    // (as ActScale::Max gives) would silently scale the output wrongly. One pass over M·K/32 scales.
    uint32_t bad = 0;
    for (int64_t i = 0; i < M * nb; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &xq[i].d, sizeof bits);
      bad |= (bits & 0x807fffffu) | static_cast<uint32_t>(bits == 0);
    }
    LA_CHECK(bad == 0, InvalidArgument, "quant_linear: ", quant_format_name(fmt),
             " weights need activations quantised with ActScale::Pow2 (activation_scale_for(fmt))");
  }
  const QuantKernels& kt = quant_kernels(active_isa());
  const int64_t tile_row_bytes = K / quant_block_size(fmt) * quant_tile_bytes(fmt);
  if (M <= kQuantGemvMaxRows || !kt.gemm) {
    // Bandwidth-bound: at least ~64 KB of weights per task so a pool wake-up pays for itself.
    const int64_t grain = std::max<int64_t>(1, 65536 / tile_row_bytes);
    QuantRowsKernel kernel = kt.rows[static_cast<int>(fmt)];
    parallel_for(tiles, grain, [&](int64_t t0, int64_t t1) { kernel(xq, M, nb, w, bias, y, ldy, N, t0, t1); });
    return;
  }
  // Compute-bound: 16 tile-rows × up to 64 blocks of unpacked int8 weights (≤ 590 KB) stay in L2
  // while every row of x passes.
  const int64_t panel = 16, chunk = std::min<int64_t>(nb, 64);
  parallel_for(tiles, 2, [&](int64_t t0, int64_t t1) {
    void* scratch = thread_scratch(ScratchSlot::QuantGemm, quant_gemm_scratch_bytes(chunk, panel));
    kt.gemm(xq, M, nb, w, fmt, bias, y, ldy, N, t0, t1, scratch, panel);
  });
}

}  // namespace la

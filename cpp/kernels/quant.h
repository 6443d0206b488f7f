// Quantised linear layers y = x·Wᵀ + b with INT4/INT8 weights and INT8 activations, and the INT4 table rows.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/cpu.h"

namespace la {

// ---------------------------------------------------------------------------------------------
// Formats
//
// Weights W[N, K] (PyTorch layout) are stored as tiles of kQuantTileRows = 16 consecutive rows.
// Tile-row g covers rows 16g..16g+15 and holds its K/B blocks contiguously; tile-rows follow each
// other (g = 0, 1, ...). The last tile-row is padded with rows whose scale is 0, so the storage is
// ceil(N/16) · (K/B) tiles. Interleaving 16 rows puts one output column in each of the 16 int32
// lanes of a vpdpbusd, so a block's dot product needs no horizontal reduction, and a decode step
// reads every weight byte exactly once for all of its rows.
//
// Inside a tile the codes of a 32-element block form a 256-byte unit of four 64-byte chunks.
// Chunk c, byte 4r + j (row r = 0..15, j = 0..3): low nibble = code of k = 4c + j, high nibble =
// code of k = 16 + 4c + j. One chunk therefore unpacks (and, shift+and) into two 16-lane × 4-byte
// vectors, "k-quads" c and c + 4, each ready for vpdpbusd against four broadcast activations.
//
//   Q4_32 : w = (q − 8)·d, q in 0..15, one fp16 d per row per 32 k.  TileQ4x32, 288 bytes.
//   Q4_128: same with one d per 128 k; the 128 codes are four 32-element units.  TileQ4x128, 1056 bytes.
//   Q8_32 : w = q·d, q in −127..127, one fp16 d per row per 32 k; byte 64t + 4r + j = q + 128 for
//           k = 4t + j (unsigned, as vpdpbusd wants).  TileQ8x32, 544 bytes.
//
// Quantisation follows ggml's q4_0: the element of largest magnitude m (signed) sets d = m / −8, so
// it is represented exactly as −8·d and all 16 levels are used (step |d| = max|w|/8, finer than the
// max|w|/7 of a ±7 grid); q = clamp(rne(w/d) + 8, 0, 15), with d the fp16-rounded scale so that codes
// are chosen against the scale that is actually stored. Q8: d = max|w|/127, q = clamp(rne(w/d)).
//
// Activations x[M, K] (K a multiple of 32) are quantised once per row into BlockQ8A blocks:
// d = activation_scale(max|x|, mode), q = clamp(rne(x/d), −127, 127), and offset = −8·Σq, which
// turns the unsigned-code dot Σ q_w·q into Σ (q_w − 8)·q (Q8 codes carry +128: their correction is
// 16·offset). One quantised buffer serves every matrix that reads the same input. The buffer is
// block-major, xq[j·M + m] for block j of row m, so the rows a kernel works on together sit side by
// side and one pointer walks them all (a kernel never needs a register per row).
//
// Two scale modes (ActScale), chosen by the weights that read the buffer (activation_scale_for):
//   Max  (Q8_32 weights): d = max|x|/127 (0 for an all-zero block).
//   Pow2 (Q4 weights):    d = the smallest power of two ≥ max|x|/127 (the quotient rounded as a float),
//                         clamped to [2^-100, 2^100].
// With Pow2, d_w (fp16: zero or |d_w| in [2^-24, 2^16)) times d_x = 2^e is exact, and the kernels form
// it by adding e to d_w's exponent field, an integer add, instead of a vmulps. Where vmulps competes
// with vpdpbusd for the same pipes (Zen 4) that lifts the bound of block-32 scales from 8/10 to 8/9
// of the int8 peak (bench_kernels ports). The step is up to 2× (on average 1.44×) max|x|/127: about
// half a bit of activation resolution, which adds ~0.3 % to the error of a product with int4 weights
// (their step is ~16× coarser) but would add ~60 % to that of a product with Q8 weights; hence Max
// for those. The Q4 kernels require Pow2 scales (quant_linear checks).
//
// Reduction order (the same in every ISA variant, every path, every thread split and every M):
//   isum_j = Σ_{k in block j} w_int[n, k]·q_x[m, k]      exact int32, j = 0 .. K/32 − 1
//   acc = +0;  for j ascending: acc = fma(float(isum_j), d_x[m, j] · d_w[n, j·32/B], acc)   (exact with Pow2)
//   y[m, n] = bias ? acc + bias[n] : acc
// so y[m, n] depends only on row m of x and row n of W: a row decoded alone gives the same bits as
// inside a 7000-row prefill, and the scalar twin matches AVX2, AVX-512 and AVX-512 VNNI exactly.
//
// Use (one attention block, h = the normed hidden state [M, 2048]):
//   quantise_weights_bf16(w_q, 2048, 2048, 2048, QuantFormat::Q4_32, wq);   // at load time
//   std::vector<BlockQ8A> hq(M * 2048 / 32);
//   quantise_activations(h, M, 2048, 2048, ActScale::Pow2, hq.data());     // once for q, k and v
//   quant_linear(hq.data(), M, 2048, wq, QuantFormat::Q4_32, 2048, b_q, q, 2048);
//   quant_linear(hq.data(), M, 2048, wk, QuantFormat::Q4_32, 256, b_k, k, 256);
//   quant_linear(hq.data(), M, 2048, wv, QuantFormat::Q4_32, 256, b_v, v, 256);
// ---------------------------------------------------------------------------------------------

// Version of the quantised products' numerics: bump it whenever a quantised plan's outputs change for
// the same inputs (2: Pow2 activation scales for Q4 weights), so that resumed runs do not mix records
// of two versions (locateanything_native.eval fingerprints it).
constexpr int kQuantNumericsVersion = 2;

constexpr int kQuantTileRows = 16;
constexpr int kQuantActBlock = 32;

enum class QuantFormat { Q4_32 = 0, Q4_128 = 1, Q8_32 = 2 };

struct BlockQ8A {
  float d;         // scale: x ≈ q·d
  int32_t offset;  // −8·Σq
  int8_t q[32];
};
static_assert(sizeof(BlockQ8A) == 40, "BlockQ8A must be 40 bytes");

struct TileQ4x32 {
  uint16_t d[16];     // fp16 scale per row
  uint8_t qs[256];    // one 32-element unit (layout above)
};
static_assert(sizeof(TileQ4x32) == 288, "TileQ4x32 must be 288 bytes");

struct TileQ4x128 {
  uint16_t d[16];
  uint8_t qs[4][256];  // k = 0..31, 32..63, 64..95, 96..127
};
static_assert(sizeof(TileQ4x128) == 1056, "TileQ4x128 must be 1056 bytes");

struct TileQ8x32 {
  uint16_t d[16];
  uint8_t qs[8][64];  // k-quad t: [row r][4 bytes], unsigned q + 128
};
static_assert(sizeof(TileQ8x32) == 544, "TileQ8x32 must be 544 bytes");

enum class ActScale { Max = 0, Pow2 = 1 };

// The activation block scale of the format above for a block whose largest magnitude is amax: one
// float division, then (Pow2) pure bit arithmetic, so every ISA variant gets the same value. With
// Pow2, zero, tiny and NaN amax give 2^-100 (an all-zero block quantises to q = 0), huge and infinite
// ones 2^100.
inline float activation_scale(float amax, ActScale mode) {
  const float t = amax / 127.0f;
  if (mode == ActScale::Max) return t;
  if (!(t > 0x1p-100f)) return 0x1p-100f;
  if (t >= 0x1p100f) return 0x1p100f;
  uint32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  if (bits & 0x007fffffu) bits = (bits & 0x7f800000u) + 0x00800000u;  // round up to the next power of two
  float d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// The scale mode the kernels of `fmt` take: Pow2 for the Q4 formats, Max for Q8_32.
inline ActScale activation_scale_for(QuantFormat fmt) {
  return fmt == QuantFormat::Q8_32 ? ActScale::Max : ActScale::Pow2;
}

const char* quant_format_name(QuantFormat fmt);
// Elements per weight scale (32 or 128).
int64_t quant_block_size(QuantFormat fmt);
// Bytes of one tile (16 rows × one block).
int64_t quant_tile_bytes(QuantFormat fmt);
// Bytes of a quantised [N, K] matrix. K must be a multiple of quant_block_size(fmt).
int64_t quant_matrix_bytes(QuantFormat fmt, int64_t N, int64_t K);

// ---------------------------------------------------------------------------------------------
// Conversions (single pass, split over the current pool by tile-row / row)
// ---------------------------------------------------------------------------------------------

// w: float [N, K] with row stride ldw; out: quant_matrix_bytes(fmt, N, K) bytes.
void quantise_weights(const float* w, int64_t N, int64_t K, int64_t ldw, QuantFormat fmt, void* out);
// Same from bfloat16 storage (checkpoint tensors), without a float copy of the matrix.
void quantise_weights_bf16(const uint16_t* w, int64_t N, int64_t K, int64_t ldw, QuantFormat fmt, void* out);

// Rows [n_begin, n_end) of dequant(W) into out [n_end − n_begin, K] (row stride K). Exact: (q − 8)·d.
void dequantise_weights(const void* w, QuantFormat fmt, int64_t N, int64_t K, int64_t n_begin, int64_t n_end,
                        float* out);
// Embedding lookup: out[i, :] = dequant(W)[ids[i], :] for i < n_ids (out row stride ldo). Ids outside
// [0, N) throw InvalidArgument.
void dequantise_rows(const void* w, QuantFormat fmt, int64_t N, int64_t K, const int32_t* ids, int64_t n_ids,
                     float* out, int64_t ldo);

// GPTQ / AutoRound symmetric int4 (zero point 8) → Q4 tiles, bit-exact without going through float:
//   qweight int32 [K/8, N]: nibble i (low first) of qweight[kk, n] is the code of k = 8·kk + i;
//   scales  fp16  [K/g, N]; w[n, k] = (q − 8)·scales[k/g, n].
// group g = 32 gives Q4_32, g = 128 gives Q4_128 (others: InvalidArgument). out: quant_matrix_bytes.
void repack_gptq_q4(const int32_t* qweight, const uint16_t* scales, int64_t K, int64_t N, int64_t group,
                    void* out);

// x: float [M, K] with row stride ldx → out [K/32, M] blocks (block-major: out[j·M + m]), with the
// scales of `mode` (Pow2 whenever a Q4 matrix reads the buffer).
void quantise_activations(const float* x, int64_t M, int64_t K, int64_t ldx, ActScale mode, BlockQ8A* out);
// out [M, K] (row stride K) = q·d of a block-major buffer of M rows, for tests.
void dequantise_activations(const BlockQ8A* xq, int64_t M, int64_t K, float* out);

// ---------------------------------------------------------------------------------------------
// The product
// ---------------------------------------------------------------------------------------------

// y[M, N] (row stride ldy) = dequant(xq)[M, K] · dequant(W)[N, K]ᵀ + bias[N] (bias may be null),
// xq from quantise_activations for the same M and K (Pow2 scales for the Q4 formats: InvalidArgument
// otherwise),
// with the reduction order above. M ≤ kQuantGemvMaxRows streams the weights once for all rows
// (decode, MTP); larger M unpacks weight panels to int8 once and reuses them across all rows
// (prefill). Split over the current pool by tile-rows; the per-thread scratch is reused across calls.
constexpr int64_t kQuantGemvMaxRows = 12;
void quant_linear(const BlockQ8A* xq, int64_t M, int64_t K, const void* w, QuantFormat fmt, int64_t N,
                  const float* bias, float* y, int64_t ldy);

// ---------------------------------------------------------------------------------------------
// Per-ISA kernel tables (one translation unit each; quant.cpp picks one via active_isa()).
// ---------------------------------------------------------------------------------------------

// One row of activations: x[K] → out[j·stride], j < K/32.
using QuantiseRowKernel = void (*)(const float* x, int64_t K, ActScale mode, BlockQ8A* out, int64_t stride);

// Rows [0, M) (any M) × tile-rows [t0, t1): y[m, 16t + r] for 16t + r < N. x is block-major,
// x[j·M + m] for j < nb = K/32; w points at tile-row 0. Weights are unpacked in registers; each tile-row is read
// from memory once and re-read from cache for every further group of up to 6 rows.
using QuantRowsKernel = void (*)(const BlockQ8A* x, int64_t M, int64_t nb, const void* w, const float* bias,
                                 float* y, int64_t ldy, int64_t N, int64_t t0, int64_t t1);

// One row-block of weights v[B] (B = quant_block_size(fmt)) → the codes of row r of `tile` and its
// fp16 scale, with the conventions above (the byte layout of every ISA's output is identical).
using QuantiseWeightsKernel = void (*)(const float* v, QuantFormat fmt, uint8_t* tile, int r);

// Same contract, for large M: weight panels are unpacked to int8 in `scratch`
// (quant_gemm_scratch_bytes) once and reused by all M rows.
using QuantGemmKernel = void (*)(const BlockQ8A* x, int64_t M, int64_t nb, const void* w, QuantFormat fmt,
                                 const float* bias, float* y, int64_t ldy, int64_t N, int64_t t0, int64_t t1,
                                 void* scratch, int64_t panel_tiles);

// bfloat16 → float32 of n values (exact: a bf16 is the top half of a float), for weights quantised
// from a bf16 checkpoint.
using WidenBf16Kernel = void (*)(const uint16_t* src, int64_t n, float* dst);

struct QuantKernels {
  QuantiseWeightsKernel quantise_weights;
  WidenBf16Kernel widen_bf16;
  QuantiseRowKernel quantise_row;
  QuantRowsKernel rows[3];  // indexed by QuantFormat
  QuantGemmKernel gemm;     // nullptr: large M uses `rows` in row chunks
};
const QuantKernels& quant_kernels_scalar();
const QuantKernels& quant_kernels_avx2();
const QuantKernels& quant_kernels_avx512();
const QuantKernels& quant_kernels_avx512_vnni();
// The table for `isa` (falls back to the best available at or below it).
const QuantKernels& quant_kernels(Isa isa);

// Scratch bytes a QuantGemmKernel needs for panels of `panel_tiles` tile-rows, unpacked in chunks of
// min(nb, 64) blocks (pass that as `nb`); 64-byte aligned.
int64_t quant_gemm_scratch_bytes(int64_t nb, int64_t panel_tiles);

}  // namespace la

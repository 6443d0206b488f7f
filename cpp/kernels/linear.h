// Dense linear layers y = x·Wᵀ (+ b) with W in PyTorch layout [N, K], float32 or bfloat16 storage,
// float32 arithmetic. Batch-invariant by contract: see "Reduction order" below.
#pragma once

#include <cstdint>

#include "core/cpu.h"

namespace la {

// Reduction order (identical in every ISA variant, so results are bit-identical across the scalar,
// AVX2 and AVX-512 kernels, across thread counts and across batch sizes):
//   lane[l] = fma-accumulate x[k]*w[k] over k = l, l+16, l+32, ... (k < K), lanes start at +0;
//   sum = tree over lanes: s8[i] = lane[i] + lane[i+8], then i+4, i+2, i+1;  y = sum + bias.
// Each output element depends only on its own row of x and of W, never on M or on which rows are
// computed together, so a row gives the same bits alone, in a batch, or inside a longer chunk.

enum class WeightFormat { F32, BF16 };

// Raw kernel signature: rows [n_begin, n_end) of the output for all M rows of x.
//   x: [M, K] row stride ldx (floats); w: [N, K] row stride K (elements of the format);
//   bias: [N] or nullptr; y: [M, N] row stride ldy.
using LinearKernel = void (*)(const float* x, int64_t M, int64_t ldx, int64_t K, const void* w,
                              const float* bias, float* y, int64_t ldy, int64_t n_begin, int64_t n_end);

// Kernel table for one ISA.
using DotKernel = float (*)(const float* a, const float* b, int64_t n);

struct LinearKernels {
  LinearKernel f32;
  LinearKernel bf16;
  DotKernel dot;
};
const LinearKernels& linear_kernels_scalar();
const LinearKernels& linear_kernels_avx2();
const LinearKernels& linear_kernels_avx512();
// The table for `isa` (falls back to the best available at or below it).
const LinearKernels& linear_kernels(Isa isa);

// y[M, N] = x[M, K] · w[N, K]ᵀ + bias, split over the current thread pool by output column.
void linear(const float* x, int64_t M, int64_t K, const void* w, WeightFormat format, int64_t N,
            const float* bias, float* y);
// Same with explicit row strides for x and y.
void linear_strided(const float* x, int64_t M, int64_t ldx, int64_t K, const void* w, WeightFormat format,
                    int64_t N, const float* bias, float* y, int64_t ldy);

// Dot product with the reduction order above (used by attention so scores follow the same rule).
float dot16(const float* a, const float* b, int64_t n);

}  // namespace la

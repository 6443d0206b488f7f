// Our own float32 GEMM for the vision tower and projector: C = A·Bᵀ (+ bias) with B stored float32
// or bfloat16 (widened exactly while packing). AVX-512 micro-kernel (12 rows × 32 columns); the
// scalar twin computes every element with the same fma chain, so they agree bit for bit.
#pragma once

#include <cstdint>

#include "core/cpu.h"

namespace la {

// Columns [n0, n1) of C[M, N] (row stride ldc) = A[M, K] (lda) · B[N, K]ᵀ (ldb) + bias[N]:
// every element is one fma chain, c = bias (or 0), then c = fma(a_k, b_k, c) for k = 0 .. K−1.
// b_bf16: B holds bfloat16 values (uint16_t), else float32. Single-threaded.
using SgemmKernel = void (*)(const float* A, int64_t M, int64_t K, int64_t lda, const void* B, bool b_bf16,
                             int64_t ldb, const float* bias, float* C, int64_t ldc, int64_t n0, int64_t n1);

SgemmKernel sgemm_kernel_scalar();
SgemmKernel sgemm_kernel_avx512();
// The kernel gemm_nt uses, or nullptr for OpenBLAS: whichever measured faster. OpenBLAS with kernels
// for this CPU reaches ~55% of the float32 peak on the vision shapes against ~50% for ours (2-core
// Xeon, AVX-512), so ours is chosen only when OpenBLAS fell back to generic kernels ("Prescott",
// ~12%) on an AVX-512 CPU, e.g. when OPENBLAS_CORETYPE was not set for a CPU it does not know.
SgemmKernel sgemm_kernel(Isa isa);

}  // namespace la

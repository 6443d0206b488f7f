// Large float32 matrix products through OpenBLAS (kept single-threaded; our pool splits the work).
#pragma once

#include <cstdint>
#include <string>

namespace la {

// C[M, N] = A[M, K] · B[N, K]ᵀ (+ bias[N]) with row strides lda, ldb, ldc. Splits N across the
// current thread pool; each piece is one single-threaded sgemm call.
void gemm_nt(const float* A, int64_t M, int64_t K, int64_t lda, const float* B, int64_t N, int64_t ldb,
             const float* bias, float* C, int64_t ldc);

// gemm_nt with B stored as bfloat16: each pool task widens its own slice of B's rows to float32
// (exact) just before multiplying it, in parallel, with no float copy of the whole matrix at once.
void gemm_nt_bf16(const float* A, int64_t M, int64_t K, int64_t lda, const uint16_t* B, int64_t N, int64_t ldb,
                  const float* bias, float* C, int64_t ldc);

// Single-threaded sgemm building blocks for use inside pool tasks (row-major):
// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C
void sgemm_nt_serial(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc);
// C[M,N] = alpha · A[M,K] · B[K,N] + beta · C
void sgemm_nn_serial(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc);

// Makes OpenBLAS single-threaded (called once by the engine; safe to call repeatedly).
void blas_single_threaded();

// The kernel family OpenBLAS picked for this CPU ("SkylakeX", "Haswell", "Prescott", ...).
std::string blas_core_name();
// True when that family is a generic one (the distribution build did not recognise the CPU).
bool blas_runs_generic_kernels();

}  // namespace la

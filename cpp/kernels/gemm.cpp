// OpenBLAS wrappers; OpenBLAS runs with one thread so the engine's pool is the only one.
#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>
#include <mutex>

#include "core/thread_pool.h"
#include "kernels/sgemm.h"

extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_corename(void);

namespace la {

void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "";
}

void sgemm_nt_serial(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_nn_serial(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool blas_runs_generic_kernels() {
  static const bool generic = [] {
    const std::string core = blas_core_name();
    return core == "Prescott" || core == "Core2" || core == "Nehalem" || core == "Katmai" || core.empty();
  }();
  return generic;
}

SgemmKernel sgemm_kernel(Isa isa) {
  // Our AVX-512 sgemm only where OpenBLAS runs generic kernels; nullptr = OpenBLAS.
  return blas_runs_generic_kernels() ? pick_isa<SgemmKernel>(isa, {{Isa::Avx512, sgemm_kernel_avx512()}, {Isa::Scalar, nullptr}})
                      : nullptr;
}

namespace {

// gemm_nt for B in float32 or bfloat16 (b_bf16). Our kernel when sgemm_kernel() picks it; else
// OpenBLAS on column chunks of at least 64 (whole packed panels), a bf16 chunk widened first into a
// float panel of its own (exact), one sgemm per task since sgemm repacks A for every call.
void gemm_nt_any(const float* A, int64_t M, int64_t K, int64_t lda, const void* B, bool b_bf16, int64_t N,
                 int64_t ldb, const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (SgemmKernel k = sgemm_kernel(active_isa())) {
    parallel_for(N, 64, [&](int64_t n0, int64_t n1) { k(A, M, K, lda, B, b_bf16, ldb, bias, C, ldc, n0, n1); });
    return;
  }
  blas_single_threaded();
  parallel_for(N, 64, [&](int64_t n0, int64_t n1) {
    const int64_t n = n1 - n0;
    const float* b = static_cast<const float*>(B) + n0 * ldb;
    int64_t ld = ldb;
    std::vector<float> panel;
    if (b_bf16) {
      panel.resize(static_cast<size_t>(n * K));
      for (int64_t r = 0; r < n; ++r) {
        const uint16_t* src = static_cast<const uint16_t*>(B) + (n0 + r) * ldb;
        float* dst = panel.data() + r * K;
        for (int64_t k = 0; k < K; ++k) {
          const uint32_t bits = static_cast<uint32_t>(src[k]) << 16;
          std::memcpy(dst + k, &bits, 4);
        }
      }
      b = panel.data();
      ld = K;
    }
    float* c = C + n0;
    if (bias)
      for (int64_t m = 0; m < M; ++m) std::copy(bias + n0, bias + n1, c + m * ldc);
    sgemm_nt_serial(M, n, K, 1.0f, A, lda, b, ld, bias ? 1.0f : 0.0f, c, ldc);
  });
}

}  // namespace

void gemm_nt(const float* A, int64_t M, int64_t K, int64_t lda, const float* B, int64_t N, int64_t ldb,
             const float* bias, float* C, int64_t ldc) {
  gemm_nt_any(A, M, K, lda, B, false, N, ldb, bias, C, ldc);
}

void gemm_nt_bf16(const float* A, int64_t M, int64_t K, int64_t lda, const uint16_t* B, int64_t N, int64_t ldb,
                  const float* bias, float* C, int64_t ldc) {
  gemm_nt_any(A, M, K, lda, B, true, N, ldb, bias, C, ldc);
}

}  // namespace la

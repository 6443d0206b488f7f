// OpenBLAS wrappers; OpenBLAS runs with one thread so the engine's pool is the only one.
#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "core/thread_pool.h"

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

void gemm_nt(const float* A, int64_t M, int64_t K, int64_t lda, const float* B, int64_t N, int64_t ldb,
             const float* bias, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  blas_single_threaded();
  // Column chunks of 64 keep OpenBLAS's packed panels whole.
  const int64_t grain = 64;
  parallel_for(N, grain, [&](int64_t n0, int64_t n1) {
    float* c = C + n0;
    if (bias) {
      for (int64_t m = 0; m < M; ++m) std::copy(bias + n0, bias + n1, c + m * ldc);
    }
    sgemm_nt_serial(M, n1 - n0, K, 1.0f, A, lda, B + n0 * ldb, ldb, bias ? 1.0f : 0.0f, c, ldc);
  });
}

}  // namespace la

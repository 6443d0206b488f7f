// Scalar twin of the float32 GEMM (-ffp-contract=off: only std::fma fuses).
#include <cmath>
#include <cstring>

#include "kernels/sgemm.h"

namespace la {

namespace {

void sgemm_scalar(const float* A, int64_t M, int64_t K, int64_t lda, const void* B, bool b_bf16, int64_t ldb,
                  const float* bias, float* C, int64_t ldc, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) {
      float c = bias ? bias[n] : 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        float b;
        if (b_bf16) {
          const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(B)[n * ldb + k]) << 16;
          std::memcpy(&b, &bits, 4);
        } else {
          b = static_cast<const float*>(B)[n * ldb + k];
        }
        c = std::fma(A[m * lda + k], b, c);
      }
      C[m * ldc + n] = c;
    }
}

}  // namespace

SgemmKernel sgemm_kernel_scalar() { return sgemm_scalar; }

}  // namespace la

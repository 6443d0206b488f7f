// Dispatch for the linear kernels: picks the ISA table once per call and splits output columns
// over the current thread pool.
#include "kernels/linear.h"

#include <algorithm>

#include "core/thread_pool.h"

namespace la {

const LinearKernels& linear_kernels(Isa isa) {
  return *pick_isa<const LinearKernels*>(
      isa, {{Isa::Avx512, &linear_kernels_avx512()}, {Isa::Avx2, &linear_kernels_avx2()}, {Isa::Scalar, &linear_kernels_scalar()}});
}

void linear_strided(const float* x, int64_t M, int64_t ldx, int64_t K, const void* w, WeightFormat format,
                    int64_t N, const float* bias, float* y, int64_t ldy) {
  if (M <= 0 || N <= 0) return;
  const LinearKernels& kt = linear_kernels(active_isa());
  LinearKernel kernel = format == WeightFormat::F32 ? kt.f32 : kt.bf16;
  // Chunks of whole 16-column groups keep tiles intact; ~32k multiply-adds per task at minimum.
  const int64_t grain = std::max<int64_t>(16, (32768 / std::max<int64_t>(1, M * K)) * 16);
  parallel_for(N, grain, [&](int64_t n0, int64_t n1) { kernel(x, M, ldx, K, w, bias, y, ldy, n0, n1); });
}

void linear(const float* x, int64_t M, int64_t K, const void* w, WeightFormat format, int64_t N, const float* bias,
            float* y) {
  linear_strided(x, M, K, K, w, format, N, bias, y, N);
}

float dot16(const float* a, const float* b, int64_t n) { return linear_kernels(active_isa()).dot(a, b, n); }

}  // namespace la

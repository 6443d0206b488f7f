// Scalar twin of the attention inner kernels (-ffp-contract=off: only std::fma fuses).
#include <cmath>

#include "kernels/attention.h"

namespace la {

namespace {

void scores_scalar(const float* q, int G, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds) {
  for (int g = 0; g < G; ++g)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int d = 0; d < D; ++d) acc = std::fma(q[g * D + d], kt[d * ldk + j], acc);
      s[g * lds + j] = acc;
    }
}

void weighted_scalar(const float* p, int64_t ldp, int G, int64_t n, const float* v, int64_t ldv, int D, float* out,
                     int64_t ldo) {
  for (int g = 0; g < G; ++g)
    for (int d = 0; d < D; ++d) {
      float acc = out[g * ldo + d];
      for (int64_t j = 0; j < n; ++j) acc = std::fma(p[g * ldp + j], v[j * ldv + d], acc);
      out[g * ldo + d] = acc;
    }
}

}  // namespace

const AttentionKernels& attention_kernels_scalar() {
  static const AttentionKernels k{scores_scalar, weighted_scalar};
  return k;
}

}  // namespace la

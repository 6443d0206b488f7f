// mlp1 forward; the row count is the number of image tokens, so the weights go through sgemm.
#include "vision/projector.h"

#include "core/trace.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace la {

Projector::Projector(const VisionConfig& vision, const TextConfig& text, const WeightStore& ws)
    : in_dim_(vision.merged_dim()), out_dim_(text.hidden) {
  ln_w_ = load_floats(ws, "mlp1.0.weight", {in_dim_});
  ln_b_ = load_floats(ws, "mlp1.0.bias", {in_dim_});
  fc1_ = load_linear(ws, "mlp1.1", out_dim_, in_dim_, true);
  fc2_ = load_linear(ws, "mlp1.3", out_dim_, out_dim_, true);
  ws.prefetch(ws.get("mlp1.1.weight"));
  ws.prefetch(ws.get("mlp1.3.weight"));
}

std::vector<float> Projector::forward(const float* merged, int64_t n) const {
  std::vector<float> h(static_cast<size_t>(n * in_dim_)), a(static_cast<size_t>(n * out_dim_)),
      y(static_cast<size_t>(n * out_dim_));
  layer_norm(merged, n, in_dim_, ln_w_.data(), ln_b_.data(), 1e-5f, h.data());
  fc1_.apply_sgemm(h.data(), n, a.data());
  gelu_erf(a.data(), n * out_dim_);
  fc2_.apply_sgemm(a.data(), n, y.data());
  trace("projector.out", -1, y.data(), {n, out_dim_});
  return y;
}

}  // namespace la

// The mlp1 projector: LayerNorm → Linear → GELU (exact erf) → Linear, vision tokens to LM width.
#pragma once

#include <vector>

#include "io/config.h"
#include "io/safetensors.h"
#include "weights/weights.h"

namespace la {

class Projector {
 public:
  Projector(const VisionConfig& vision, const TextConfig& text, const WeightStore& ws);
  // merged [n, in_dim] → [n, out_dim]
  std::vector<float> forward(const float* merged, int64_t n) const;
  int64_t in_dim() const { return in_dim_; }
  int64_t out_dim() const { return out_dim_; }
  size_t weight_bytes() const { return fc1_.weight_bytes() + fc2_.weight_bytes(); }

 private:
  int64_t in_dim_, out_dim_;
  std::vector<float> ln_w_, ln_b_;
  LinearWeight fc1_, fc2_;
};

}  // namespace la

// MoonViT vision tower: patch embedding + interpolated learnable position embedding, pre-norm blocks
// with 2-D RoPE and per-image bidirectional attention, final LayerNorm, 2×2 patch merge.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"
#include "model/weights.h"

namespace la {

class VisionTower {
 public:
  VisionTower(const VisionConfig& cfg, const WeightStore& ws);

  // One image: pixels [gh·gw, 3·patch·patch] → merged tokens [gh·gw/(mh·mw), mh·mw·hidden].
  std::vector<float> forward(const float* pixels, int grid_h, int grid_w) const;

  // Patch embedding + position embedding only, [gh·gw, hidden] (for parity checks).
  std::vector<float> embed(const float* pixels, int grid_h, int grid_w) const;

  // The learnable position table resized to (grid_h, grid_w), [gh·gw, hidden]: PyTorch bicubic
  // (A = −0.75, align_corners=False, clamped taps), x pass then y pass, float32.
  std::vector<float> interpolate_pos_emb(int grid_h, int grid_w) const;

  const VisionConfig& config() const { return cfg_; }
  size_t weight_bytes() const;

 private:
  struct Block {
    std::vector<float> norm0_w, norm0_b, norm1_w, norm1_b;
    LinearWeight wqkv, wo, fc0, fc1;
  };

  VisionConfig cfg_;
  LinearWeight patch_proj_;       // [hidden, 3·patch·patch]
  std::vector<float> pos_table_;  // [pos_h, pos_w, hidden]
  std::vector<Block> blocks_;
  std::vector<float> final_w_, final_b_;
};

}  // namespace la

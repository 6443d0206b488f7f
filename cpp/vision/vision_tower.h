// MoonViT vision tower: patch embedding + interpolated learnable position embedding, pre-norm blocks
// with 2-D RoPE and per-image bidirectional attention, final LayerNorm, 2×2 patch merge.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"
#include "weights/weight_loader.h"
#include "weights/weights.h"

namespace la {

class VisionTower {
 public:
  // With a loader, the block linears are taken as its plan says (float, or Q8_32 × INT8); without
  // one they are the checkpoint's float weights.
  VisionTower(const VisionConfig& cfg, const WeightStore& ws, WeightLoader* loader = nullptr);

  // One image: pixels [gh·gw, 3·patch·patch] → merged tokens [gh·gw/(mh·mw), mh·mw·hidden].
  std::vector<float> forward(const float* pixels, int grid_h, int grid_w) const;

  // Patch embedding + position embedding only, [gh·gw, hidden] (for parity checks).
  std::vector<float> embed(const float* pixels, int grid_h, int grid_w) const;

  // The learnable position table resized to (grid_h, grid_w), [gh·gw, hidden]: PyTorch bicubic
  // (A = −0.75, align_corners=False, clamped taps), x pass then y pass, float32.
  std::vector<float> interpolate_pos_emb(int grid_h, int grid_w) const;

  const VisionConfig& config() const { return cfg_; }
  // The attention's products: float32 for the exact plan; bf16 (vdpbf16ps, twice the float32 rate)
  // when the block linears are quantised and the CPU has AVX-512 BF16 (bf16_units()).
  bool bf16_attention() const;
  size_t weight_bytes() const;

 private:
  struct Block {
    std::vector<float> norm0_w, norm0_b, norm1_w, norm1_b;
    LinearWeight wqkv, wo, fc0, fc1;
  };
  // y[L, w.out] (row stride ldy) = x[L, w.in] (row stride ldx) · wᵀ + b: OpenBLAS / our sgemm for
  // float weights, the INT8 kernels for quantised ones.
  static void matmul(const LinearWeight& w, const float* x, int64_t L, int64_t ldx, float* y, int64_t ldy);

  VisionConfig cfg_;
  LinearWeight patch_proj_;       // [hidden, 3·patch·patch]
  std::vector<float> pos_table_;  // [pos_h, pos_w, hidden]
  std::vector<Block> blocks_;
  std::vector<float> final_w_, final_b_;
};

}  // namespace la

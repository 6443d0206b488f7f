// MoonViT forward pass, one image at a time. Matrix products: float32 from the checkpoint's weights
// (OpenBLAS or our sgemm, bf16 widened per panel so bf16 checkpoints stay bf16 in memory), or the
// INT8 kernels when the quantisation plan holds the tower's linears as Q8_32.
#include "vision/vision_tower.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/trace.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace la {

namespace {

float cubic_near(float t, float A) { return ((A + 2.0f) * t - (A + 3.0f)) * t * t + 1.0f; }
float cubic_far(float t, float A) { return ((A * t - 5.0f * A) * t + 8.0f * A) * t - 4.0f * A; }

// PyTorch bicubic source index and the four tap weights for output index o.
void cubic_taps(int in_size, int out_size, int o, int idx[4], float w[4]) {
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float real = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
  const float fl = std::floor(real);
  const int i0 = static_cast<int>(fl);
  const float t = real - fl;
  const float A = -0.75f;
  w[0] = cubic_far(t + 1.0f, A);
  w[1] = cubic_near(t, A);
  w[2] = cubic_near(1.0f - t, A);
  w[3] = cubic_far(1.0f - t + 1.0f, A);
  for (int k = 0; k < 4; ++k) idx[k] = std::min(std::max(i0 - 1 + k, 0), in_size - 1);
}

}  // namespace

VisionTower::VisionTower(const VisionConfig& cfg, const WeightStore& ws, WeightLoader* loader) : cfg_(cfg) {
  const int64_t H = cfg.hidden, P = 3LL * cfg.patch * cfg.patch;
  // The conv kernel [hidden, 3, p, p] is a dense [hidden, 3·p·p] matrix in (c, ky, kx) order.
  patch_proj_ = owned_float_linear(load_floats(ws, "vision_model.patch_embed.proj.weight", {H, 3, cfg.patch, cfg.patch}),
                                   H, P, load_floats(ws, "vision_model.patch_embed.proj.bias", {H}));
  pos_table_ = load_floats(ws, "vision_model.patch_embed.pos_emb.weight", {cfg.pos_h, cfg.pos_w, H});
  for (int i = 0; i < cfg.layers; ++i) {
    const std::string p = "vision_model.encoder.blocks." + std::to_string(i) + ".";
    Block b;
    b.norm0_w = load_floats(ws, p + "norm0.weight", {H});
    b.norm0_b = load_floats(ws, p + "norm0.bias", {H});
    b.norm1_w = load_floats(ws, p + "norm1.weight", {H});
    b.norm1_b = load_floats(ws, p + "norm1.bias", {H});
    auto linear = [&](const std::string& name, int64_t out, int64_t in) {
      LinearWeight w = loader ? loader->vision_linear(name, out, in, true) : load_linear(ws, name, out, in, true);
      if (!w.quantized) ws.prefetch(ws.get(name + ".weight"));  // used in place: stream it in now
      return w;
    };
    b.wqkv = linear(p + "wqkv", 3 * H, H);
    b.wo = linear(p + "wo", H, H);
    b.fc0 = linear(p + "mlp.fc0", cfg.intermediate, H);
    b.fc1 = linear(p + "mlp.fc1", H, cfg.intermediate);
    blocks_.push_back(std::move(b));
  }
  final_w_ = load_floats(ws, "vision_model.encoder.final_layernorm.weight", {H});
  final_b_ = load_floats(ws, "vision_model.encoder.final_layernorm.bias", {H});
}

bool VisionTower::bf16_attention() const { return !blocks_.empty() && blocks_[0].wqkv.quantized && bf16_units(); }

void VisionTower::matmul(const LinearWeight& w, const float* x, int64_t L, int64_t ldx, float* y, int64_t ldy) {
  if (w.quantized) {
    w.apply(x, L, ldx, y, ldy);
  } else {
    LA_ASSERT(ldx == w.in && ldy == w.out, "float vision linears take dense rows");
    w.apply_sgemm(x, L, y);
  }
}

size_t VisionTower::weight_bytes() const {
  size_t n = patch_proj_.weight_bytes() + pos_table_.size() * 4;
  for (const auto& b : blocks_)
    n += b.wqkv.weight_bytes() + b.wo.weight_bytes() + b.fc0.weight_bytes() + b.fc1.weight_bytes();
  return n;
}

std::vector<float> VisionTower::interpolate_pos_emb(int grid_h, int grid_w) const {
  const int64_t H = cfg_.hidden;
  std::vector<float> out(static_cast<size_t>(grid_h) * grid_w * H);
  std::vector<int> yi(4 * grid_h), xi(4 * grid_w);
  std::vector<float> yw(4 * grid_h), xw(4 * grid_w);
  for (int oy = 0; oy < grid_h; ++oy) cubic_taps(cfg_.pos_h, grid_h, oy, &yi[4 * oy], &yw[4 * oy]);
  for (int ox = 0; ox < grid_w; ++ox) cubic_taps(cfg_.pos_w, grid_w, ox, &xi[4 * ox], &xw[4 * ox]);
  for (int oy = 0; oy < grid_h; ++oy) {
    for (int ox = 0; ox < grid_w; ++ox) {
      float* o = out.data() + (static_cast<int64_t>(oy) * grid_w + ox) * H;
      for (int64_t c = 0; c < H; ++c) {
        float rows[4];
        for (int k = 0; k < 4; ++k) {
          const float* r = pos_table_.data() + static_cast<int64_t>(yi[4 * oy + k]) * cfg_.pos_w * H;
          rows[k] = r[xi[4 * ox + 0] * H + c] * xw[4 * ox + 0] + r[xi[4 * ox + 1] * H + c] * xw[4 * ox + 1] +
                    r[xi[4 * ox + 2] * H + c] * xw[4 * ox + 2] + r[xi[4 * ox + 3] * H + c] * xw[4 * ox + 3];
        }
        o[c] = rows[0] * yw[4 * oy + 0] + rows[1] * yw[4 * oy + 1] + rows[2] * yw[4 * oy + 2] +
               rows[3] * yw[4 * oy + 3];
      }
    }
  }
  return out;
}

std::vector<float> VisionTower::embed(const float* pixels, int grid_h, int grid_w) const {
  const int64_t L = static_cast<int64_t>(grid_h) * grid_w, H = cfg_.hidden;
  std::vector<float> x(static_cast<size_t>(L * H));
  patch_proj_.apply_sgemm(pixels, L, x.data());
  std::vector<float> pos = interpolate_pos_emb(grid_h, grid_w);
  add_inplace(x.data(), pos.data(), L * H);
  return x;
}

std::vector<float> VisionTower::forward(const float* pixels, int grid_h, int grid_w) const {
  LA_CHECK(grid_h > 0 && grid_w > 0 && grid_h % cfg_.merge_h == 0 && grid_w % cfg_.merge_w == 0, InvalidArgument,
           "vision grid ", grid_h, "x", grid_w, " is not a positive multiple of the merge kernel ", cfg_.merge_h, "x",
           cfg_.merge_w);
  const int64_t L = static_cast<int64_t>(grid_h) * grid_w, H = cfg_.hidden, D = cfg_.head_dim();
  const int heads = cfg_.heads;
  std::vector<float> x = embed(pixels, grid_h, grid_w);
  trace("vision.embed", -1, x.data(), {L, H});

  // 2-D RoPE table: pair j of a head uses frequency f_{j/2}; even pairs rotate by the column,
  // odd pairs by the row (the executed order; the reference docstring says the opposite).
  const int pairs = static_cast<int>(D / 2);
  std::vector<float> cos_t(static_cast<size_t>(L) * pairs), sin_t(static_cast<size_t>(L) * pairs);
  std::vector<float> freq(pairs / 2);
  for (int i = 0; i < pairs / 2; ++i)
    freq[i] = 1.0f / std::pow(cfg_.rope_theta, static_cast<float>(4 * i) / static_cast<float>(D));
  for (int64_t n = 0; n < L; ++n) {
    const float row = static_cast<float>(n / grid_w), col = static_cast<float>(n % grid_w);
    for (int j = 0; j < pairs; ++j) {
      const float angle = ((j & 1) ? row : col) * freq[j / 2];
      cos_t[n * pairs + j] = std::cos(angle);
      sin_t[n * pairs + j] = std::sin(angle);
    }
  }

  std::vector<float> h(static_cast<size_t>(L * H)), qkv(static_cast<size_t>(L * 3 * H)), attn(static_cast<size_t>(L * H));
  // The MLP's hidden rows are as wide as fc1 reads them (zero-padded for a quantised fc1; gelu(0) = 0).
  const int64_t I = cfg_.intermediate, ld_mlp = blocks_.empty() ? I : blocks_[0].fc1.in;
  std::vector<float> mlp(static_cast<size_t>(L * ld_mlp), 0.0f), tmp(static_cast<size_t>(L * H));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const bool bf16 = bf16_attention();
  for (size_t li = 0; li < blocks_.size(); ++li) {
    const Block& b = blocks_[li];
    const int layer = static_cast<int>(li);
    layer_norm(x.data(), L, H, b.norm0_w.data(), b.norm0_b.data(), cfg_.ln_eps, h.data());
    matmul(b.wqkv, h.data(), L, H, qkv.data(), 3 * H);
    rope_interleaved(qkv.data(), L, 3 * H, heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    rope_interleaved(qkv.data() + H, L, 3 * H, heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    (bf16 ? attention_bidirectional_bf16 : attention_bidirectional)(
        qkv.data(), qkv.data() + H, qkv.data() + 2 * H, 3 * H, L, heads, static_cast<int>(D), scale, attn.data(), H);
    matmul(b.wo, attn.data(), L, H, tmp.data(), H);
    add_inplace(x.data(), tmp.data(), L * H);
    layer_norm(x.data(), L, H, b.norm1_w.data(), b.norm1_b.data(), cfg_.ln_eps, h.data());
    matmul(b.fc0, h.data(), L, H, mlp.data(), ld_mlp);
    gelu_tanh(mlp.data(), L * ld_mlp);
    matmul(b.fc1, mlp.data(), L, ld_mlp, tmp.data(), H);
    add_inplace(x.data(), tmp.data(), L * H);
    trace("vision.block", layer, x.data(), {L, H});
  }
  layer_norm(x.data(), L, H, final_w_.data(), final_b_.data(), cfg_.ln_eps, x.data());

  // Merge each mh×mw window into one token: sub-patches in row-major window order, concatenated.
  const int mh = cfg_.merge_h, mw = cfg_.merge_w;
  const int gh2 = grid_h / mh, gw2 = grid_w / mw;
  std::vector<float> merged(static_cast<size_t>(L * H));
  for (int i = 0; i < gh2; ++i)
    for (int j = 0; j < gw2; ++j) {
      float* o = merged.data() + (static_cast<int64_t>(i) * gw2 + j) * mh * mw * H;
      for (int a = 0; a < mh; ++a)
        for (int c = 0; c < mw; ++c) {
          const float* src = x.data() + (static_cast<int64_t>(i * mh + a) * grid_w + (j * mw + c)) * H;
          std::copy(src, src + H, o + (a * mw + c) * H);
        }
    }
  trace("vision.merged", -1, merged.data(), {static_cast<int64_t>(gh2) * gw2, mh * mw * H});
  return merged;
}

}  // namespace la

// Qwen2 decoder forward: stacked rows through every linear layer, per-chunk masked attention over
// each sequence's cache, logits only for the rows the decode loop reads.
#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "core/trace.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"

namespace la {

namespace {
// Rows per MLP block: bounds the activation memory of long prefills (results do not depend on it,
// the kernels being batch-invariant).
constexpr int64_t kMlpRowBlock = 512;
}  // namespace

Decoder::Decoder(const TextConfig& cfg, const WeightStore& ws) : cfg_(cfg) {
  const int64_t H = cfg.hidden, D = cfg.head_dim(), I = cfg.intermediate;
  const int64_t Hq = static_cast<int64_t>(cfg.heads) * D, Hkv = static_cast<int64_t>(cfg.kv_heads) * D;
  embed_ = load_linear(ws, "language_model.model.embed_tokens", cfg.vocab, H, false);
  const std::string head = "language_model.lm_head.weight";
  if (!cfg.tie_word_embeddings) {
    lm_head_ = load_linear(ws, "language_model.lm_head", cfg.vocab, H, false);
  } else if (ws.has(head)) {
    // A tied model that also stores the head: use the embedding (as the reference does) and record
    // how far the stored copy is from it.
    const TensorView& t = ws.expect(head, {cfg.vocab, H});
    const TensorView& e = ws.get("language_model.model.embed_tokens.weight");
    float worst = 0.0f;
    for (int64_t i = 0; i < t.numel(); ++i) worst = std::max(worst, std::fabs(t.float_at(i) - e.float_at(i)));
    tied_head_max_diff_ = worst;
  }
  for (int i = 0; i < cfg.layers; ++i) {
    const std::string p = "language_model.model.layers." + std::to_string(i) + ".";
    Layer l;
    l.attn_norm = load_floats(ws, p + "input_layernorm.weight", {H});
    l.mlp_norm = load_floats(ws, p + "post_attention_layernorm.weight", {H});
    l.q = load_linear(ws, p + "self_attn.q_proj", Hq, H, true);
    l.k = load_linear(ws, p + "self_attn.k_proj", Hkv, H, true);
    l.v = load_linear(ws, p + "self_attn.v_proj", Hkv, H, true);
    l.o = load_linear(ws, p + "self_attn.o_proj", H, Hq, false);
    l.gate = load_linear(ws, p + "mlp.gate_proj", I, H, false);
    l.up = load_linear(ws, p + "mlp.up_proj", I, H, false);
    l.down = load_linear(ws, p + "mlp.down_proj", H, I, false);
    layers_.push_back(std::move(l));
  }
  final_norm_ = load_floats(ws, "language_model.model.norm.weight", {H});
  inv_freq_.resize(D / 2);
  for (int64_t d = 0; d < D / 2; ++d)
    inv_freq_[d] = 1.0f / std::pow(cfg.rope_theta, static_cast<float>(2 * d) / static_cast<float>(D));
}

size_t Decoder::weight_bytes() const {
  size_t n = embed_.weight_bytes() + (lm_head_.data ? lm_head_.weight_bytes() : 0);
  for (const auto& l : layers_)
    n += l.q.weight_bytes() + l.k.weight_bytes() + l.v.weight_bytes() + l.o.weight_bytes() + l.gate.weight_bytes() +
         l.up.weight_bytes() + l.down.weight_bytes();
  return n;
}

void Decoder::embed(int32_t id, float* out) const {
  LA_CHECK(id >= 0 && id < cfg_.vocab, InvalidArgument, "token id ", id, " is outside the vocabulary [0, ",
           cfg_.vocab, ")");
  const int64_t H = cfg_.hidden;
  if (embed_.format == WeightFormat::F32) {
    std::memcpy(out, static_cast<const float*>(embed_.data) + id * H, H * sizeof(float));
  } else {
    const uint16_t* row = static_cast<const uint16_t*>(embed_.data) + id * H;
    for (int64_t i = 0; i < H; ++i) out[i] = bf16_to_f32(row[i]);
  }
}

void Decoder::forward(const std::vector<Chunk>& chunks) const {
  const int64_t H = cfg_.hidden, D = cfg_.head_dim(), I = cfg_.intermediate;
  const int heads = cfg_.heads, kv_heads = cfg_.kv_heads;
  const int64_t Hq = heads * D, Hkv = kv_heads * D, QKV = Hq + 2 * Hkv;

  // Row offsets of each chunk in the stacked matrices.
  std::vector<int64_t> row0(chunks.size() + 1, 0);
  for (size_t c = 0; c < chunks.size(); ++c) {
    LA_ASSERT(chunks[c].q > 0 && chunks[c].cache, "empty chunk");
    LA_ASSERT(chunks[c].window == 0 || chunks[c].window <= chunks[c].q, "window larger than chunk");
    row0[c + 1] = row0[c] + chunks[c].q;
  }
  const int64_t R = row0.back();

  // Embeddings, with image rows spliced in order.
  std::vector<float> x(static_cast<size_t>(R * H));
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    int64_t used = 0;
    for (int64_t r = 0; r < ch.q; ++r) {
      float* dst = x.data() + (row0[c] + r) * H;
      if (ch.image_rows && ch.ids[r] == ch.image_token) {
        LA_CHECK(used < ch.n_image_rows, InvalidArgument, "the prompt holds more image tokens than the ",
                 ch.n_image_rows, " image rows provided");
        std::memcpy(dst, ch.image_rows + used * H, H * sizeof(float));
        ++used;
      } else {
        embed(ch.ids[r], dst);
      }
    }
    LA_CHECK(!ch.image_rows || used == ch.n_image_rows, InvalidArgument, "the prompt holds ", used,
             " image tokens but the image encodes to ", ch.n_image_rows, " rows");
    ch.cache->reserve(ch.cache->length() + ch.q);
  }

  // RoPE tables per row and visible key ranges per row.
  std::vector<float> cos_t(static_cast<size_t>(R * (D / 2))), sin_t(static_cast<size_t>(R * (D / 2)));
  std::vector<KeyRanges> ranges(static_cast<size_t>(R));
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    const int64_t C = ch.cache->length(), K = C + ch.q;
    for (int64_t r = 0; r < ch.q; ++r) {
      const int64_t g = row0[c] + r;
      const float pos = static_cast<float>(ch.positions[r]);
      for (int64_t d = 0; d < D / 2; ++d) {
        const float angle = pos * inv_freq_[d];
        cos_t[g * (D / 2) + d] = std::cos(angle);
        sin_t[g * (D / 2) + d] = std::sin(angle);
      }
      KeyRanges kr;
      if (ch.window > 0 && r >= ch.q - ch.window) {
        // MTP window row: every committed key but the anchor (index L−1), plus the whole window.
        const int64_t L = K - ch.window;
        kr.a_end = static_cast<int32_t>(L - 1);
        kr.b_begin = static_cast<int32_t>(L);
        kr.b_end = static_cast<int32_t>(K);
      } else {
        kr.a_end = static_cast<int32_t>(C + r + 1);
      }
      ranges[g] = kr;
    }
  }

  std::vector<float> a(static_cast<size_t>(R * H)), qkv(static_cast<size_t>(R * QKV)), attn(static_cast<size_t>(R * Hq));
  const int64_t mlp_rows = std::min(R, kMlpRowBlock);
  std::vector<float> gate_up(static_cast<size_t>(mlp_rows * 2 * I)), act(static_cast<size_t>(mlp_rows * I));
  std::vector<float> tmp(static_cast<size_t>(R * H));
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    const int layer = static_cast<int>(li);
    rms_norm(x.data(), R, H, L.attn_norm.data(), cfg_.rms_eps, a.data());
    L.q.apply(a.data(), R, H, qkv.data(), QKV);
    L.k.apply(a.data(), R, H, qkv.data() + Hq, QKV);
    L.v.apply(a.data(), R, H, qkv.data() + Hq + Hkv, QKV);
    rope_rotate_half(qkv.data(), R, QKV, heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    rope_rotate_half(qkv.data() + Hq, R, QKV, kv_heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    // Append this chunk's keys/values to each cache, then attend.
    for (size_t c = 0; c < chunks.size(); ++c) {
      const Chunk& ch = chunks[c];
      KvCache& kv = *ch.cache;
      const int64_t C = kv.length(), cap = kv.capacity();
      float* kd = kv.k(layer);
      float* vd = kv.v(layer);
      for (int64_t r = 0; r < ch.q; ++r) {
        const float* src = qkv.data() + (row0[c] + r) * QKV;
        for (int h = 0; h < kv_heads; ++h) {
          std::memcpy(kd + (h * cap + C + r) * D, src + Hq + h * D, D * sizeof(float));
          std::memcpy(vd + (h * cap + C + r) * D, src + Hq + Hkv + h * D, D * sizeof(float));
        }
      }
      attention_gqa(qkv.data() + row0[c] * QKV, ch.q, QKV, heads, kv_heads, static_cast<int>(D), kd, vd, cap,
                    ranges.data() + row0[c], scale, attn.data() + row0[c] * Hq, Hq);
    }
    L.o.apply(attn.data(), R, Hq, tmp.data(), H);
    add_inplace(x.data(), tmp.data(), R * H);
    rms_norm(x.data(), R, H, L.mlp_norm.data(), cfg_.rms_eps, a.data());
    for (int64_t r0 = 0; r0 < R; r0 += kMlpRowBlock) {
      const int64_t n = std::min(kMlpRowBlock, R - r0);
      L.gate.apply(a.data() + r0 * H, n, H, gate_up.data(), 2 * I);
      L.up.apply(a.data() + r0 * H, n, H, gate_up.data() + I, 2 * I);
      silu_mul(gate_up.data(), n, I, act.data());
      L.down.apply(act.data(), n, I, tmp.data() + r0 * H, H);
    }
    add_inplace(x.data(), tmp.data(), R * H);
    trace("decoder.layer", layer, x.data(), {R, H});
  }
  for (const Chunk& ch : chunks) ch.cache->extend_to(ch.cache->length() + ch.q);

  // Final norm and head, only for the rows whose logits are read.
  const LinearWeight& head = lm_head_.data ? lm_head_ : embed_;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    const int64_t n = std::min(ch.n_logit_rows, ch.q);
    if (n <= 0 || !ch.logits) continue;
    const int64_t first = row0[c] + ch.q - n;
    std::vector<float> h(static_cast<size_t>(n * H));
    rms_norm(x.data() + first * H, n, H, final_norm_.data(), cfg_.rms_eps, h.data());
    head.apply(h.data(), n, H, ch.logits, cfg_.vocab);
  }
}

}  // namespace la

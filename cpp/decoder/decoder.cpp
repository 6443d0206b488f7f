// Qwen2 decoder forward: stacked rows through every linear layer, per-chunk masked attention over
// each sequence's cache, logits only for the rows the decode loop reads.
#include "decoder/decoder.h"

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

namespace {

// Linears that read the same input, as one stacked matrix with each part a view into it when the
// loader can stack them (returned), else each part loaded alone (an empty matrix is returned).
LinearWeight stacked_or_separate(WeightLoader& loader, const std::string& key,
                                 const std::vector<WeightLoader::Part>& parts, int64_t in,
                                 const std::vector<LinearWeight*>& out) {
  std::vector<LinearWeight> views;
  LinearWeight stacked = loader.stacked(key, parts, in, &views);
  for (size_t j = 0; j < parts.size(); ++j)
    *out[j] = stacked.data ? views[j] : loader.linear(parts[j].name, parts[j].out, in, parts[j].with_bias);
  return stacked;
}

}  // namespace

Decoder::Decoder(const TextConfig& cfg, const WeightStore& ws, WeightLoader& loader) : cfg_(cfg) {
  const int64_t H = cfg.hidden, D = cfg.head_dim(), I = cfg.intermediate;
  const int64_t Hq = static_cast<int64_t>(cfg.heads) * D, Hkv = static_cast<int64_t>(cfg.kv_heads) * D;
  const std::string embed_name = "language_model.model.embed_tokens";
  const std::string head = "language_model.lm_head.weight";
  embed_ = loader.embedding(embed_name, cfg.vocab, H);
  if (!cfg.tie_word_embeddings) {
    lm_head_ = loader.linear("language_model.lm_head", cfg.vocab, H, false);
  } else {
    lm_head_ = loader.tied_head(embed_, embed_name);
  }
  if (cfg.tie_word_embeddings && ws.has(head)) {
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
    l.qkv = stacked_or_separate(loader, p + "self_attn.qkv",
                                {{p + "self_attn.q_proj", Hq, true}, {p + "self_attn.k_proj", Hkv, true},
                                 {p + "self_attn.v_proj", Hkv, true}},
                                H, {&l.q, &l.k, &l.v});
    l.o = loader.linear(p + "self_attn.o_proj", H, Hq, false);
    l.gate_up = stacked_or_separate(loader, p + "mlp.gate_up",
                                    {{p + "mlp.gate_proj", I, false}, {p + "mlp.up_proj", I, false}}, H,
                                    {&l.gate, &l.up});
    l.down = loader.linear(p + "mlp.down_proj", H, I, false);
    layers_.push_back(std::move(l));
  }
  final_norm_ = load_floats(ws, "language_model.model.norm.weight", {H});
  inv_freq_.resize(D / 2);
  for (int64_t d = 0; d < D / 2; ++d)
    inv_freq_[d] = 1.0f / std::pow(cfg.rope_theta, static_cast<float>(2 * d) / static_cast<float>(D));
}

const LinearWeight* Decoder::linear(const std::string& name) const {
  if (name == "language_model.model.embed_tokens") return &embed_;
  if (name == "language_model.lm_head") return &lm_head_;
  const std::string prefix = "language_model.model.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return nullptr;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return nullptr;
  int i = -1;
  try {
    i = std::stoi(name.substr(prefix.size(), dot - prefix.size()));
  } catch (const std::exception&) {
    return nullptr;
  }
  if (i < 0 || i >= static_cast<int>(layers_.size())) return nullptr;
  const Layer& l = layers_[i];
  const std::string rest = name.substr(dot + 1);
  const std::pair<const char*, const LinearWeight*> all[] = {
      {"self_attn.q_proj", &l.q}, {"self_attn.k_proj", &l.k}, {"self_attn.v_proj", &l.v},
      {"self_attn.o_proj", &l.o}, {"mlp.gate_proj", &l.gate}, {"mlp.up_proj", &l.up}, {"mlp.down_proj", &l.down}};
  for (const auto& [n, w] : all)
    if (rest == n) return w;
  return nullptr;
}

size_t Decoder::linear_bytes() const {
  size_t n = 0;
  for (const auto& l : layers_)
    n += l.q.weight_bytes() + l.k.weight_bytes() + l.v.weight_bytes() + l.o.weight_bytes() + l.gate.weight_bytes() +
         l.up.weight_bytes() + l.down.weight_bytes();
  return n;
}

size_t Decoder::weight_bytes() const { return linear_bytes() + embedding_bytes() + head_bytes(); }

void Decoder::embed(const int32_t* ids, int64_t n, float* out) const {
  const int64_t H = cfg_.hidden;
  for (int64_t i = 0; i < n; ++i)
    LA_CHECK(ids[i] >= 0 && ids[i] < cfg_.vocab, InvalidArgument, "token id ", ids[i],
             " is outside the vocabulary [0, ", cfg_.vocab, ")");
  if (embed_.quantized) {
    dequantise_rows(embed_.data, embed_.qformat, cfg_.vocab, H, ids, n, out, H);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (embed_.format == WeightFormat::F32) {
      std::memcpy(out + i * H, static_cast<const float*>(embed_.data) + ids[i] * H, H * sizeof(float));
    } else {
      const uint16_t* row = static_cast<const uint16_t*>(embed_.data) + ids[i] * H;
      for (int64_t k = 0; k < H; ++k) out[i * H + k] = bf16_to_f32(row[k]);
    }
  }
}

void Decoder::forward(const std::vector<Chunk>& chunks, Scratch& s) const {
  const int64_t H = cfg_.hidden, D = cfg_.head_dim(), I = cfg_.intermediate;
  const int heads = cfg_.heads, kv_heads = cfg_.kv_heads;
  const int64_t Hq = heads * D, Hkv = kv_heads * D, QKV = Hq + 2 * Hkv;

  // Row offsets of each chunk in the stacked matrices.
  std::vector<int64_t>& row0 = s.row0;
  row0.assign(chunks.size() + 1, 0);
  for (size_t c = 0; c < chunks.size(); ++c) {
    LA_ASSERT(chunks[c].q > 0 && chunks[c].cache, "empty chunk");
    LA_ASSERT(chunks[c].window == 0 || chunks[c].window <= chunks[c].q, "window larger than chunk");
    row0[c + 1] = row0[c] + chunks[c].q;
  }
  const int64_t R = row0.back();

  // Embeddings, with image rows spliced in order.
  std::vector<float>& x = s.x;
  x.resize(static_cast<size_t>(R * H));
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    embed(ch.ids, ch.q, x.data() + row0[c] * H);
    int64_t used = 0;
    for (int64_t r = 0; r < ch.q && ch.image_rows; ++r) {
      if (ch.ids[r] != ch.image_token) continue;
      LA_CHECK(used < ch.n_image_rows, InvalidArgument, "the prompt holds more image tokens than the ",
               ch.n_image_rows, " image rows provided");
      std::memcpy(x.data() + (row0[c] + r) * H, ch.image_rows + used * H, H * sizeof(float));
      ++used;
    }
    LA_CHECK(!ch.image_rows || used == ch.n_image_rows, InvalidArgument, "the prompt holds ", used,
             " image tokens but the image encodes to ", ch.n_image_rows, " rows");
    ch.cache->reserve(ch.cache->length() + ch.q);
  }

  // RoPE tables per row and visible key ranges per row.
  std::vector<float>&cos_t = s.cos_t, &sin_t = s.sin_t;
  cos_t.resize(static_cast<size_t>(R * (D / 2)));
  sin_t.resize(static_cast<size_t>(R * (D / 2)));
  std::vector<KeyRanges>& ranges = s.ranges;
  ranges.resize(static_cast<size_t>(R));
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

  const int64_t mlp_rows = std::min(R, kMlpRowBlock);
  std::vector<float>&a = s.a, &qkv = s.qkv, &attn = s.attn, &gate_up = s.gate_up, &act = s.act, &tmp = s.tmp;
  a.resize(static_cast<size_t>(R * H));
  qkv.resize(static_cast<size_t>(R * QKV));
  attn.resize(static_cast<size_t>(R * Hq));
  gate_up.resize(static_cast<size_t>(mlp_rows * 2 * I));
  act.resize(static_cast<size_t>(mlp_rows * I));
  tmp.resize(static_cast<size_t>(R * H));
  std::vector<BlockQ8A>& xq = s.xq;  // one quantised copy of a shared input (quantised weights only)
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  // The last layer finishes only the rows whose logits are read (the last n_logit_rows of each chunk
  // with logits). The other rows need just that layer's keys and values, which go to the caches before
  // attention; their attention output, o_proj and MLP would be thrown away. Every kernel here is
  // row-independent, so the finished rows get the same bits either way.
  std::vector<int64_t>& keep0 = s.keep0;  // offset of each chunk's finished rows in the compact block
  keep0.assign(chunks.size() + 1, 0);
  for (size_t c = 0; c < chunks.size(); ++c)
    keep0[c + 1] = keep0[c] + (chunks[c].logits ? std::max<int64_t>(0, std::min(chunks[c].n_logit_rows, chunks[c].q)) : 0);
  const int64_t R_last = keep0.back();

  // o_proj, residual, MLP and residual for n rows xr [n, H] whose attention output is attn [n, Hq].
  auto finish_rows = [&](const Layer& L, float* xr, int64_t n) {
    if (n == 0) return;
    L.o.apply(attn.data(), n, Hq, tmp.data(), H);
    add_inplace(xr, tmp.data(), n * H);
    rms_norm(xr, n, H, L.mlp_norm.data(), cfg_.rms_eps, a.data());
    for (int64_t r0 = 0; r0 < n; r0 += kMlpRowBlock) {
      const int64_t m = std::min(kMlpRowBlock, n - r0);
      if (L.gate_up.data)
        apply_linears(a.data() + r0 * H, m, H, {{&L.gate_up, gate_up.data(), 2 * I}}, xq);
      else
        apply_linears(a.data() + r0 * H, m, H, {{&L.gate, gate_up.data(), 2 * I}, {&L.up, gate_up.data() + I, 2 * I}}, xq);
      silu_mul(gate_up.data(), m, I, act.data());
      L.down.apply(act.data(), m, I, tmp.data() + r0 * H, H);
    }
    add_inplace(xr, tmp.data(), n * H);
  };

  for (size_t li = 0; li < layers_.size(); ++li) {
    const Layer& L = layers_[li];
    const int layer = static_cast<int>(li);
    const bool trim = li + 1 == layers_.size() && R_last < R;
    rms_norm(x.data(), R, H, L.attn_norm.data(), cfg_.rms_eps, a.data());
    if (L.qkv.data)
      apply_linears(a.data(), R, H, {{&L.qkv, qkv.data(), QKV}}, xq);
    else
      apply_linears(a.data(), R, H, {{&L.q, qkv.data(), QKV}, {&L.k, qkv.data() + Hq, QKV}, {&L.v, qkv.data() + Hq + Hkv, QKV}},
                    xq);
    rope_rotate_half(qkv.data(), R, QKV, heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    rope_rotate_half(qkv.data() + Hq, R, QKV, kv_heads, static_cast<int>(D), cos_t.data(), sin_t.data());
    // Append this chunk's keys/values to each cache, then attend (in the trimmed last layer, only the
    // finished rows attend, their outputs packed at keep0).
    for (size_t c = 0; c < chunks.size(); ++c) {
      const Chunk& ch = chunks[c];
      KvCache& kv = *ch.cache;
      const int64_t C = kv.length(), cap = kv.capacity();
      for (int64_t r = 0; r < ch.q; ++r) {
        const float* src = qkv.data() + (row0[c] + r) * QKV;
        kv.write(layer, C + r, src + Hq, src + Hq + Hkv);
      }
      const int64_t n = trim ? keep0[c + 1] - keep0[c] : ch.q, first = row0[c] + ch.q - n;
      if (n == 0) continue;
      attention_gqa(qkv.data() + first * QKV, n, QKV, heads, kv_heads, static_cast<int>(D), kv.k(layer), kv.v(layer), cap,
                    ranges.data() + first, scale, attn.data() + (trim ? keep0[c] : row0[c]) * Hq, Hq);
    }
    if (!trim) {
      finish_rows(L, x.data(), R);
      trace("decoder.layer", layer, x.data(), {R, H});
      continue;
    }
    // Gather the finished rows, run them through, put them back where the head reads them.
    std::vector<float>& xk = s.xk;
    xk.resize(static_cast<size_t>(R_last * H));
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int64_t n = keep0[c + 1] - keep0[c], first = row0[c] + chunks[c].q - n;
      std::memcpy(xk.data() + keep0[c] * H, x.data() + first * H, static_cast<size_t>(n * H) * sizeof(float));
    }
    finish_rows(L, xk.data(), R_last);
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int64_t n = keep0[c + 1] - keep0[c], first = row0[c] + chunks[c].q - n;
      std::memcpy(x.data() + first * H, xk.data() + keep0[c] * H, static_cast<size_t>(n * H) * sizeof(float));
    }
    trace("decoder.layer", layer, xk.data(), {R_last, H});  // the finished rows only
  }
  for (const Chunk& ch : chunks) ch.cache->extend_to(ch.cache->length() + ch.q);

  // Final norm and head, only for the rows whose logits are read.
  const LinearWeight& head = lm_head_;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& ch = chunks[c];
    const int64_t n = std::min(ch.n_logit_rows, ch.q);
    if (n <= 0 || !ch.logits) continue;
    const int64_t first = row0[c] + ch.q - n;
    s.h.resize(static_cast<size_t>(n * H));
    rms_norm(x.data() + first * H, n, H, final_norm_.data(), cfg_.rms_eps, s.h.data());
    head.apply(s.h.data(), n, H, ch.logits, cfg_.vocab);
  }
}

}  // namespace la

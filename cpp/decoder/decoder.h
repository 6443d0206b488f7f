// Qwen2 decoder (tied embeddings, RMSNorm, GQA, rotate-half RoPE, q/k/v bias, SwiGLU) running a
// batch of chunks, each against its own KV cache, with causal or MTP-window masks.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "kernels/attention.h"
#include "io/safetensors.h"
#include "decoder/kv_cache.h"
#include "weights/weight_loader.h"
#include "weights/weights.h"

namespace la {

class Decoder {
 public:
  // Weights come through `loader` (float, quantised, repacked or cached, as its plan says).
  Decoder(const TextConfig& cfg, const WeightStore& ws, WeightLoader& loader);

  // One sequence's part of a forward pass. The chunk's rows are appended to `cache` (which then
  // holds C + q rows; the caller truncates). Rows whose id is `image_token` take the next row of
  // `image_rows` instead of their embedding (first forward only).
  struct Chunk {
    KvCache* cache = nullptr;
    const int32_t* ids = nullptr;
    const int32_t* positions = nullptr;
    int64_t q = 0;
    int window = 0;  // > 0: the last `window` rows are an MTP window (see attention masks)
    const float* image_rows = nullptr;
    int64_t n_image_rows = 0;
    int32_t image_token = -1;
    int64_t n_logit_rows = 1;  // logits for the last n rows of the chunk
    float* logits = nullptr;   // out: [n_logit_rows, vocab]

    // q rows continuing `cache` (the last `window` of them an MTP window), no images, no logits.
    static Chunk rows(KvCache* cache, const int32_t* ids, const int32_t* positions, int64_t q, int window = 0) {
      Chunk c;
      c.cache = cache;
      c.ids = ids;
      c.positions = positions;
      c.q = q;
      c.window = window;
      c.n_logit_rows = 0;
      return c;
    }
    // Image feature rows [n, hidden] spliced, in order, at the rows whose id is `token`.
    Chunk& with_images(const float* image_rows_, int64_t n, int32_t token) {
      image_rows = image_rows_;
      n_image_rows = n;
      image_token = token;
      return *this;
    }
    // Logits of the last n rows into out [n, vocab].
    Chunk& with_logits(int64_t n, float* out) {
      n_logit_rows = n;
      logits = out;
      return *this;
    }
  };

  // Buffers of one forward pass, kept between passes so a decode step allocates nothing once they
  // have grown to the largest chunk seen. One per caller thread (the engine holds one under its lock).
  struct Scratch {
    std::vector<int64_t> row0, keep0;
    std::vector<float> x, xk, cos_t, sin_t, a, qkv, attn, gate_up, act, tmp, h;
    std::vector<KeyRanges> ranges;
    std::vector<BlockQ8A> xq;
  };

  // Runs all chunks through the decoder in one pass: the rows are stacked into one matrix per
  // linear layer (weights streamed once for the batch); attention is per chunk.
  void forward(const std::vector<Chunk>& chunks, Scratch& scratch) const;
  // The same with buffers of its own (one-off passes, tests).
  void forward(const std::vector<Chunk>& chunks) const {
    Scratch s;
    forward(chunks, s);
  }

  const TextConfig& config() const { return cfg_; }
  KvCache new_cache() const { return KvCache(cfg_.layers, cfg_.kv_heads, cfg_.head_dim()); }
  // Embedding rows of `n` tokens as float32 into out [n, hidden].
  void embed(const int32_t* ids, int64_t n, float* out) const;
  size_t weight_bytes() const;
  // Bytes by part: the layers' linears, the embedding table, the output head (0 when it is the table).
  size_t linear_bytes() const;
  size_t embedding_bytes() const { return embed_.weight_bytes(); }
  size_t head_bytes() const { return lm_head_.data != embed_.data ? lm_head_.weight_bytes() : 0; }
  // Weight bytes one decode step streams from memory: every linear plus the output head.
  size_t streamed_bytes_per_step() const { return linear_bytes() + lm_head_.weight_bytes(); }
  // A matrix by checkpoint name ("language_model.model.layers.0.self_attn.q_proj", ...,
  // "language_model.model.embed_tokens", "language_model.lm_head"), or nullptr.
  const LinearWeight* linear(const std::string& name) const;
  // Max |lm_head − embed_tokens| when the checkpoint stores both for a tied model (-1 otherwise).
  float tied_head_max_diff() const { return tied_head_max_diff_; }

 private:
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;
    LinearWeight q, k, v, o, gate, up, down;
    // Quantised plans: q|k|v and gate|up stacked by rows (q, k, v, gate, up then view into them).
    LinearWeight qkv, gate_up;
  };

  TextConfig cfg_;
  LinearWeight embed_;    // [vocab, hidden]
  LinearWeight lm_head_;  // [vocab, hidden]: the embedding (tied) or its own weights
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  std::vector<float> inv_freq_;  // [head_dim/2]
  float tied_head_max_diff_ = -1.0f;
};

}  // namespace la

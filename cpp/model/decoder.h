// Qwen2 decoder (tied embeddings, RMSNorm, GQA, rotate-half RoPE, q/k/v bias, SwiGLU) running a
// batch of chunks, each against its own KV cache, with causal or MTP-window masks.
#pragma once

#include <cstdint>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace la {

class Decoder {
 public:
  Decoder(const TextConfig& cfg, const WeightStore& ws);

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
  };

  // Runs all chunks through the decoder in one pass: the rows are stacked into one matrix per
  // linear layer (weights streamed once for the batch); attention is per chunk.
  void forward(const std::vector<Chunk>& chunks) const;

  const TextConfig& config() const { return cfg_; }
  KvCache new_cache() const { return KvCache(cfg_.layers, cfg_.kv_heads, cfg_.head_dim()); }
  // Embedding row of token `id` as float32.
  void embed(int32_t id, float* out) const;
  size_t weight_bytes() const;
  // Max |lm_head − embed_tokens| when the checkpoint stores both for a tied model (-1 otherwise).
  float tied_head_max_diff() const { return tied_head_max_diff_; }

 private:
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;
    LinearWeight q, k, v, o, gate, up, down;
  };

  TextConfig cfg_;
  LinearWeight embed_;    // [vocab, hidden]; also the output head when tied
  LinearWeight lm_head_;  // used when the head is not tied
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  std::vector<float> inv_freq_;  // [head_dim/2]
  float tied_head_max_diff_ = -1.0f;
};

}  // namespace la

// Where the decoder's (and the quantised vision tower's) matrices come from: float checkpoint
// tensors (used in place, or quantised at load), AutoRound/GPTQ int4 tensors (repacked without going
// through float), or a packed cache written by an earlier load (memory-mapped, no conversion).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"
#include "weights/packed_cache.h"
#include "weights/weights.h"

namespace la {

// How the decoder is held in memory.
struct QuantPlan {
  bool quantize = false;                   // decoder linears quantised
  QuantFormat linear = QuantFormat::Q4_32;  // their format
  bool embedding_q4 = false;               // the embedding table as Q4_32 (gathered and dequantised per token)
  // The tied output head: the embedding itself (quantised or not), a separate Q8_32 copy, or the
  // checkpoint's float weights.
  enum class Head { Embedding, Q8, Float } head = Head::Embedding;
  // The vision tower's linears as Q8_32 × INT8 activations (VNNI), input sizes zero-padded to a
  // multiple of 32; otherwise float32 compute from the checkpoint's weights.
  bool vision_q8 = false;

  // "none" (float32 compute from the checkpoint's weights), "int8", "int4" (Q4 blocks of 32),
  // "int4-b128", each optionally + "-visf" (vision tower in float32); InvalidArgument otherwise.
  static QuantPlan from_name(const std::string& name);
  bool any() const { return quantize || embedding_q4 || head == Head::Q8 || vision_q8; }
  // Tag of the packed cache file for this plan ("q4_32-emb4-head8", ...).
  std::string tag() const;
};

// The quantisation names QuantPlan::from_name accepts, in the order the docs list them.
std::vector<std::string> quantization_names();

class WeightLoader {
 public:
  // `packed` (may be null) holds tensors of an earlier quantisation, named "<weight name>@<format>".
  WeightLoader(const WeightStore& ws, const QuantizationConfig& checkpoint_quant, const QuantPlan& plan,
               const WeightStore* packed);

  // A decoder linear `name` ([out, in], + bias) as the plan says.
  LinearWeight linear(const std::string& name, int64_t out, int64_t in, bool with_bias);

  struct Part {
    std::string name;
    int64_t out;
    bool with_bias;
  };
  // Quantised plans: linears that read the same input (q|k|v, gate|up) as ONE matrix of their
  // stacked rows, so a step makes one kernel call and one pass over the input. `parts` returns each
  // part as a view into it (biases kept per part). Returns an empty weight (data == nullptr) when
  // the plan does not quantise, or the parts cannot share a format or tile boundaries.
  LinearWeight stacked(const std::string& key, const std::vector<Part>& parts, int64_t in,
                       std::vector<LinearWeight>* views);
  // A vision-tower linear `name` ([out, in], + bias): the checkpoint's float weights, or with
  // plan.vision_q8 a Q8_32 matrix whose input size is zero-padded to padded_input(in) (the caller
  // feeds rows of `in` columns, zero-padded when quantised, or rows already that wide with zero padding).
  LinearWeight vision_linear(const std::string& name, int64_t out, int64_t in, bool with_bias);
  static int64_t padded_input(int64_t in);

  // The token embedding [vocab, hidden].
  LinearWeight embedding(const std::string& name, int64_t vocab, int64_t hidden);
  // The output head of a tied model, from the embedding.
  LinearWeight tied_head(const LinearWeight& embedding, const std::string& embedding_name);

  // Quantised tensors made during this load (not found in `packed`) are written straight into the
  // packed cache being built (PackedCache::reserve / commit), so the load never holds them all in
  // private memory. Without a cache writer, or once writing fails, they stay in private memory.
  void set_cache_writer(PackedCache* cache, size_t max_tensors) {
    cache_ = cache;
    max_tensors_ = max_tensors;
  }
  const std::vector<std::string>& notes() const { return notes_; }
  // Called with the checkpoint bytes converted so far, after each tensor this load quantises.
  void set_progress(std::function<void(size_t)> fn) { progress_ = std::move(fn); }

 private:
  LinearWeight quantized(const std::string& weight_name, const LinearWeight& source, QuantFormat fmt);
  // A quantised [out, in] weight to fill: its memory is the next tensor of the cache being written
  // (unless parts of a stacked matrix are being made), else private. finish_new() hands a filled
  // one to the cache under `key`.
  LinearWeight new_quantized(int64_t out, int64_t in, QuantFormat fmt);
  LinearWeight finish_new(LinearWeight q, const std::string& key);
  LinearWeight from_packed(const std::string& weight_name, int64_t out, int64_t in, QuantFormat fmt);
  // A float decoder weight in the plan's format, or kept in float (with a note) when its input size
  // is not a multiple of the format's block.
  LinearWeight quantize_float(const std::string& weight_name, const LinearWeight& source);

  const WeightStore& ws_;
  QuantizationConfig ckpt_;
  QuantPlan plan_;
  const WeightStore* packed_;
  PackedCache* cache_ = nullptr;
  size_t max_tensors_ = 0;
  bool making_parts_ = false;  // stacked(): its parts are joined first, and only the join is kept
  std::vector<std::string> notes_;
  std::function<void(size_t)> progress_;
  size_t converted_bytes_ = 0;
};

}  // namespace la

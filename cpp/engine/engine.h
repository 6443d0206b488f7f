// The public C++ API: load a checkpoint once, then run queries through the pipeline in order
// (preprocess → vision tower → projector → prompt → decoder prefill/decode → answer parsing),
// with per-stage timings. Every stage is also callable on its own for parity work.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/image.h"
#include "core/thread_pool.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "text/answer_parser.h"
#include "decoder/decode_loop.h"
#include "decoder/decoder.h"
#include "vision/preprocess.h"
#include "vision/projector.h"
#include "text/prompt.h"
#include "text/tokenizer.h"
#include "vision/vision_cache.h"
#include "vision/vision_tower.h"

namespace la {

// What a load is doing, reported as it goes: stage "open", "map_cache", "wait_cache" (another process
// is building the cache), "build_cache", "quantise" (fraction = share of the checkpoint's bytes
// converted so far), "write_cache", "warning" (e.g. no writable cache folder) or "done".
struct LoadProgress {
  std::string stage;
  double fraction = 0;
  std::string message;  // a sentence for people ("" for the repeated "quantise" updates)
};

struct EngineOptions {
  std::string model_dir;
  int threads = 0;                     // 0 = the process's CPU budget (core/cpu_budget.h)
  // "none" (float32 compute from the checkpoint's weights: the exact path), "int8", "int4" (decoder
  // linears in Q4 blocks of 32, INT4 embedding table, Q8 output head) or "int4-b128".
  std::string quantization = "int4";
  // Packed weight cache for quantised loads: "" = the user cache dir ($LOCATEANYTHING_CACHE or
  // ~/.cache/locateanything_native/packed), "off", or an explicit file path.
  std::string packed_cache;
  size_t vision_cache_bytes = 0;       // keep image encodings across calls (0 = per call only)
  std::function<void(const LoadProgress&)> progress;  // optional; called on the loading thread
};

// Seconds per stage of one query, and counts.
struct Timings {
  double preprocess = 0, vision = 0, projector = 0, prefill = 0, decode = 0, total = 0;
  int64_t prompt_tokens = 0, image_tokens = 0, generated_tokens = 0, forward_calls = 0;
  int64_t shared_prefix_tokens = 0;  // prompt tokens whose KV cache came from a prefix shared in a batch
  int64_t images_encoded = 0;        // images this row paid the vision tower for (0 when reused)
  double tokens_per_second() const { return decode + prefill > 0 ? generated_tokens / (prefill + decode) : 0; }
};

// One forward pass of the decode loop, as the row saw it (in a batch the pass is shared).
struct StepTiming {
  int64_t q_len = 0;  // rows of this query's chunk
  bool mtp = false;
  double seconds = 0;
  int64_t committed = 0;  // tokens this pass added to the answer
};

struct Query {
  std::vector<ImageU8> images;  // image 1, then optional visual-prompt images
  std::string question;         // the text after the image (task prompt or free question)
  ChatTemplate chat_template = ChatTemplate::Worker;
};

struct QueryResult {
  std::string answer;  // decoded with special tokens kept
  std::vector<int32_t> prompt_ids;
  GenerationResult generation;  // generated ids, stop reason, history, steps
  std::vector<std::pair<std::string, std::string>> history;  // (ar|mtp, decoded tokens) per forward
  std::vector<Detection> detections;  // in pixels of images[0]
  Timings timings;
  std::vector<StepTiming> steps;  // every forward pass, in order (the first is the prefill)
  int width = 0, height = 0;
};

class Engine {
 public:
  explicit Engine(const EngineOptions& options);
  ~Engine();

  // The whole pipeline for one query. Thread-safe: concurrent calls are serialised.
  QueryResult run(const Query& query, const GenerationOptions& options);

  // Many queries at once, each row token-identical to running it alone: every distinct image
  // (by content) is encoded once, rows with the same images share the KV cache of their common
  // prompt prefix, and each decode step stacks all active rows into one pass over the weights.
  // Rows keep their own options (mode, sampling, limits), cache, rollback and stop.
  std::vector<QueryResult> run_batch(const std::vector<Query>& queries, const std::vector<GenerationOptions>& options);

  // Bound of the cross-call vision cache in bytes (0 = off).
  void set_vision_cache_bytes(size_t bytes) { vision_cache_.set_max_bytes(bytes); }
  const VisionCache& vision_cache() const { return vision_cache_; }

  // ---- stages ----
  PixelValues preprocess(const ImageU8& image) const;
  std::vector<float> vision_merged(const float* pixels, int grid_h, int grid_w) const;
  std::vector<float> project(const float* merged, int64_t n) const;
  // Prompt ids for a question over images with the given token counts (placeholder order in `order`).
  std::vector<int32_t> prompt_ids(const std::string& question, const std::vector<int64_t>& image_tokens,
                                  ChatTemplate tmpl, std::vector<int>* order = nullptr) const;
  // Causal forward of `ids` (image rows spliced at <IMG_CONTEXT>) on a fresh cache; logits of the
  // last `last_n` rows, [last_n, vocab].
  std::vector<float> prefill_logits(const std::vector<int32_t>& ids, const float* image_rows, int64_t n_image_rows,
                                    int64_t last_n) const;

  const ModelConfig& config() const { return cfg_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  ThreadPool& pool() const { return *pool_; }
  // Why the pool has its size: "threads=4 (argument)", "affinity mask (2 CPUs)", "OMP_NUM_THREADS=1", ...
  const std::string& threads_source() const { return threads_source_; }
  double load_seconds() const { return load_seconds_; }
  // Human-readable notes from loading (e.g. a stored lm_head that differs from the embedding).
  const std::vector<std::string>& load_notes() const { return notes_; }
  const std::string& packed_cache_file() const { return packed_cache_path_; }
  // How the decoder is held ("float", "q4_32-emb4-head8", ...).
  const std::string& quantization_tag() const { return quant_tag_; }
  size_t weight_bytes() const;
  const VisionTower& vision() const { return *vision_; }
  const Projector& projector() const { return *projector_; }
  const Decoder& decoder() const { return *decoder_; }
  // A decoder matrix as float32 [out, in] (dequantised when quantised), by checkpoint name.
  std::vector<float> decoder_weight(const std::string& name, int64_t* out, int64_t* in) const;
  std::string decode_tokens(const std::vector<int32_t>& ids) const { return tokenizer_.decode(ids); }

 private:
  using Report = std::function<void(const char* stage, double fraction, const std::string& message)>;
  void check_token_ids();
  // The vision tower, projector and decoder as `plan` says, their quantised weights from the packed
  // cache (built and written once per cache file when missing).
  void build_networks(const QuantPlan& plan, const Report& report);
  void make_networks(WeightLoader& loader);
  // Returns the heap freed after loading to the OS (the private copies of a first quantised load).
  static void release_load_memory();
  std::shared_ptr<const EncodedImage> encode(const ImageU8& image, Timings* timings) const;

  // run_batch's steps, in order (engine.cpp).
  struct Row;
  using EncodedImages = std::unordered_map<ImageKey, std::shared_ptr<const EncodedImage>, ImageKeyHash>;
  EncodedImages encode_images(const std::vector<Query>& queries, std::vector<Row>& rows,
                              std::vector<QueryResult>& res);
  void build_prompts(const std::vector<Query>& queries, const std::vector<GenerationOptions>& options,
                     const EncodedImages& encoded, std::vector<Row>& rows, std::vector<QueryResult>& res) const;
  void share_prefixes(std::vector<Row>& rows, std::vector<QueryResult>& res) const;
  void decode(std::vector<Row>& rows, std::vector<QueryResult>& res) const;
  void collect(std::vector<Row>& rows, std::vector<QueryResult>& res, double elapsed) const;

  EngineOptions options_;
  ModelConfig cfg_;
  Tokenizer tokenizer_;
  std::unique_ptr<WeightStore> weights_;
  std::unique_ptr<WeightStore> packed_;  // mapped packed cache (quantised loads)
  std::string packed_cache_path_;
  std::string quant_tag_ = "float";
  std::unique_ptr<VisionTower> vision_;
  std::unique_ptr<Projector> projector_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<ThreadPool> pool_;
  std::mutex run_mu_;
  mutable Decoder::Scratch scratch_;  // the decoder's buffers between steps (used under run_mu_)
  VisionCache vision_cache_;
  double load_seconds_ = 0;
  std::string threads_source_;
  std::vector<std::string> notes_;
};

// The version of the quantised plans' numerics (kernels/quant.h): records of a quantised run depend on
// it, the exact path's do not.
int quant_numerics_version();

}  // namespace la

// Engine: loading and the query pipeline, top-down.
#include "engine/engine.h"

#include <algorithm>
#include <unordered_map>


#include <cmath>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/cpu_budget.h"
#include "core/error.h"
#include "weights/packed_cache.h"
#include "io/files.h"
#include "core/timer.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace la {

namespace {
// Positions 0 .. n-1 of a chunk that starts a sequence.
std::vector<int32_t> first_positions(int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(i);
  return p;
}
}  // namespace

Engine::Engine(const EngineOptions& options) : options_(options) {
  Stopwatch sw;
  const QuantPlan plan = QuantPlan::from_name(options.quantization);
  LA_CHECK(options.threads >= 0, InvalidArgument, "threads must be >= 0 (0 = all cores), got ", options.threads);
  blas_single_threaded();
  if (blas_runs_generic_kernels() && detected_isa() >= Isa::Avx2)
    notes_.push_back("OpenBLAS did not recognise this CPU and uses generic kernels (the vision tower runs several "
                     "times slower): set OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) before starting; "
                     "the Python package does this on import");
  const Report report = [&options](const char* stage, double fraction, const std::string& message) {
    if (options.progress) options.progress(LoadProgress{stage, fraction, message});
  };
  if (options.threads > 0) {
    pool_ = std::make_unique<ThreadPool>(options.threads);
    threads_source_ = str_cat("threads=", options.threads, " (argument)");
  } else {
    const ThreadBudget budget = default_thread_budget();
    pool_ = std::make_unique<ThreadPool>(budget.threads);
    threads_source_ = budget.source;
  }
  report("open", 0, str_cat("loading ", options.model_dir, " (quantization=", options.quantization, ", ",
                            pool_->size(), " threads: ", threads_source_, ")"));
  vision_cache_.set_max_bytes(options.vision_cache_bytes);
  PoolScope scope(pool_.get());
  cfg_ = load_model_config(options.model_dir);
  tokenizer_ = Tokenizer::from_dir(options.model_dir);
  check_token_ids();
  if (cfg_.model_max_length == 0) cfg_.model_max_length = tokenizer_.model_max_length();
  weights_ = std::make_unique<WeightStore>(WeightStore::open(options.model_dir));
  build_networks(plan, report);
  release_load_memory();
  quant_tag_ = plan.tag();
  if (decoder_->tied_head_max_diff() > 0.0f)
    notes_.push_back(str_cat("the checkpoint stores language_model.lm_head.weight, which differs from the tied "
                             "embedding by up to ", decoder_->tied_head_max_diff(),
                             "; the embedding is used, as in the reference"));
  load_seconds_ = sw.seconds();
  report("done", 1, str_cat("loaded in ", static_cast<int64_t>(load_seconds_ * 10 + 0.5) / 10.0, " s"));
  options_.progress = nullptr;  // loading is over; the engine keeps no reference to the caller's callback
}

Engine::~Engine() = default;

void Engine::build_networks(const QuantPlan& plan, const Report& report) {
  // Quantised weights come from the packed cache when one matches this checkpoint and plan; when
  // none does, one process per cache file builds it (the others wait on its lock, then map it).
  std::unique_ptr<PackedCache> cache;
  std::unique_ptr<WeightStore> packed;
  size_t notes_before = 0;  // cache notes already passed on
  if (plan.any() && options_.packed_cache != "off") {
    cache = std::make_unique<PackedCache>(options_.packed_cache, options_.model_dir, weights_->files(), plan.tag());
    packed_cache_path_ = cache->path();
    packed = cache->open();
    if (!packed && cache->lock([&](const std::string& m) { report("wait_cache", 0, m); })) packed = cache->open();
    for (const std::string& n : cache->notes()) {
      notes_.push_back(n);
      report("warning", 0, n);
    }
    notes_before = cache->notes().size();
  }
  WeightLoader loader(*weights_, cfg_.quantization, plan, packed.get());
  if (plan.any() && !packed) {
    // Converting a bf16 checkpoint streams it once: ~1 GB/s with the files in the page cache, a
    // sixth of that from a cold disk (measured on the 3B layout, bench/README.md).
    const double gb = static_cast<double>(weights_->total_bytes()) / 1e9;
    report("build_cache", 0,
           str_cat("quantising the weights (", options_.quantization, ") once",
                   cache && cache->locked() ? " into the packed cache " + packed_cache_path_
                                            : std::string(" (no packed cache: every load does this)"),
                   "; roughly ", static_cast<int64_t>(std::ceil(gb / 1.0)), "-", static_cast<int64_t>(std::ceil(gb / 0.16)),
                   " s for these ", static_cast<int64_t>(std::ceil(gb * 10)) / 10.0, " GB; later loads map the cache"));
    const double total = static_cast<double>(std::max<size_t>(1, weights_->total_bytes()));
    loader.set_progress([&report, total](size_t done) { report("quantise", std::min(1.0, done / total), ""); });
    // Each tensor is quantised straight into the cache file, so the load never holds them all; a
    // write that fails (disk full) leaves that tensor and the rest in memory, with a note.
    if (cache && cache->locked()) loader.set_cache_writer(cache.get(), weights_->names().size() + 8);
  } else if (packed) {
    report("map_cache", 0, "mapping the packed weight cache " + packed_cache_path_);
  }
  make_networks(loader);
  for (const std::string& n : loader.notes()) notes_.push_back(n);
  if (cache) {
    for (size_t i = notes_before; i < cache->notes().size(); ++i) {
      notes_.push_back(cache->notes()[i]);
      report("warning", 0, notes_.back());
    }
  }
  if (cache && cache->writing()) {
    report("write_cache", 1, "writing the packed weight cache " + packed_cache_path_);
    try {
      cache->finish();
      notes_.push_back("wrote the packed weight cache " + packed_cache_path_);
      // Map the finished file as every other process will (its pages shared between them); the
      // networks built while writing, and their views of the temporary file, go.
      if ((packed = cache->open())) {
        WeightLoader mapped(*weights_, cfg_.quantization, plan, packed.get());
        make_networks(mapped);
      }
    } catch (const RuntimeError& e) {
      notes_.push_back(std::string("could not write the packed weight cache: ") + e.what());
      report("warning", 0, notes_.back());
    }
  } else if (packed) {
    notes_.push_back("loaded packed weights from " + packed_cache_path_);
  }
  packed_ = std::move(packed);
}

void Engine::release_load_memory() {
#if defined(__GLIBC__)
  // The private copies a first quantised load made are freed once the networks map the cache, but
  // glibc keeps freed heap in the process unless asked: hand it back, so this process's resident set
  // is what every other process mapping the cache has.
  malloc_trim(0);
#endif
}

void Engine::make_networks(WeightLoader& loader) {
  vision_ = std::make_unique<VisionTower>(cfg_.vision, *weights_, &loader);
  projector_ = std::make_unique<Projector>(cfg_.vision, cfg_.text, *weights_);
  decoder_ = std::make_unique<Decoder>(cfg_.text, *weights_, loader);
}

void Engine::check_token_ids() {
  auto require = [&](const char* token) {
    const int32_t id = tokenizer_.token_to_id(token);
    LA_CHECK(id >= 0, RuntimeError, "the tokenizer in '", cfg_.dir, "' has no '", token,
             "' token; this is not a LocateAnything tokenizer");
    return id;
  };
  const int32_t img_ctx = require("<IMG_CONTEXT>");
  require("<img>");
  require("</img>");
  if (cfg_.ids.image_context < 0) cfg_.ids.image_context = img_ctx;
  LA_CHECK(cfg_.ids.image_context == img_ctx, RuntimeError, "config.json sets image_token_index=",
           cfg_.ids.image_context, " but the tokenizer maps <IMG_CONTEXT> to ", img_ctx,
           "; the image features would be spliced at the wrong tokens. Fix image_token_index in config.json.");
  const std::pair<const char*, int32_t> named[] = {
      {"<box>", cfg_.ids.box_start}, {"</box>", cfg_.ids.box_end}, {"<ref>", cfg_.ids.ref_start},
      {"</ref>", cfg_.ids.ref_end},  {"<text_mask>", cfg_.ids.mask}, {"<null>", cfg_.ids.null},
      {"<|im_end|>", cfg_.ids.im_end}, {"<0>", cfg_.ids.coord_start}};
  for (const auto& [token, id] : named) {
    const int32_t tid = tokenizer_.token_to_id(token);
    LA_CHECK(tid < 0 || tid == id, RuntimeError, "config.json gives ", token, " the id ", id,
             " but the tokenizer maps it to ", tid, "; the config and tokenizer files do not belong together.");
  }
  LA_CHECK(tokenizer_.vocab_size() <= cfg_.text.vocab, RuntimeError, "the tokenizer has ", tokenizer_.vocab_size(),
           " ids but text_config.vocab_size is ", cfg_.text.vocab, "; the tokenizer and weights do not match.");
}

size_t Engine::weight_bytes() const {
  return vision_->weight_bytes() + projector_->weight_bytes() + decoder_->weight_bytes();
}

std::vector<float> Engine::decoder_weight(const std::string& name, int64_t* out, int64_t* in) const {
  const LinearWeight* w = decoder_->linear(name);
  LA_CHECK(w, InvalidArgument, "no decoder matrix named '", name,
           "' (e.g. language_model.model.layers.0.self_attn.q_proj, language_model.model.embed_tokens)");
  std::vector<float> v(static_cast<size_t>(w->out * w->in));
  w->to_float(v.data());
  *out = w->out;
  *in = w->in;
  return v;
}

PixelValues Engine::preprocess(const ImageU8& image) const {
  PoolScope scope(pool_.get());
  return preprocess_image(image, cfg_.preprocess);
}

std::vector<float> Engine::vision_merged(const float* pixels, int grid_h, int grid_w) const {
  PoolScope scope(pool_.get());
  return vision_->forward(pixels, grid_h, grid_w);
}

std::vector<float> Engine::project(const float* merged, int64_t n) const {
  PoolScope scope(pool_.get());
  return projector_->forward(merged, n);
}

std::vector<int32_t> Engine::prompt_ids(const std::string& question, const std::vector<int64_t>& image_tokens,
                                        ChatTemplate tmpl, std::vector<int>* order) const {
  LA_CHECK(!image_tokens.empty(), InvalidArgument, "a query needs at least one image");
  const std::string text = render_chat(question, static_cast<int>(image_tokens.size()) - 1, tmpl);
  return tokenizer_.encode(expand_image_placeholders(text, image_tokens, order));
}

std::vector<float> Engine::prefill_logits(const std::vector<int32_t>& ids, const float* image_rows,
                                          int64_t n_image_rows, int64_t last_n) const {
  PoolScope scope(pool_.get());
  LA_CHECK(!ids.empty(), InvalidArgument, "input_ids is empty");
  last_n = std::max<int64_t>(1, std::min<int64_t>(last_n, static_cast<int64_t>(ids.size())));
  KvCache cache = decoder_->new_cache();
  const std::vector<int32_t> positions = first_positions(static_cast<int64_t>(ids.size()));
  std::vector<float> logits(static_cast<size_t>(last_n * cfg_.text.vocab));
  decoder_->forward({Decoder::Chunk::rows(&cache, ids.data(), positions.data(), static_cast<int64_t>(ids.size()))
                         .with_images(image_rows, n_image_rows, cfg_.ids.image_context)
                         .with_logits(last_n, logits.data())});
  return logits;
}

std::shared_ptr<const EncodedImage> Engine::encode(const ImageU8& image, Timings* timings) const {
  Stopwatch sw;
  PixelValues px = preprocess_image(image, cfg_.preprocess);
  timings->preprocess += sw.seconds();
  auto enc = std::make_shared<EncodedImage>();
  enc->grid_h = px.grid_h;
  enc->grid_w = px.grid_w;
  enc->tokens = static_cast<int64_t>(px.grid_h / cfg_.vision.merge_h) * (px.grid_w / cfg_.vision.merge_w);
  sw.reset();
  const std::vector<float> merged = vision_->forward(px.data.data(), px.grid_h, px.grid_w);
  timings->vision += sw.seconds();
  sw.reset();
  enc->projected = projector_->forward(merged.data(), enc->tokens);
  timings->projector += sw.seconds();
  return enc;
}

QueryResult Engine::run(const Query& query, const GenerationOptions& options) {
  return std::move(run_batch({query}, {options})[0]);
}

// ---- run_batch, step by step ----

namespace {

// Shared prefixes shorter than this are not worth a separate forward pass.
constexpr int64_t kMinSharedPrefix = 16;

}  // namespace

// One query's decoding state inside a batch.
struct Engine::Row {
  std::vector<ImageKey> keys;         // image content per image of the query, in query order
  std::vector<int32_t> ids;
  std::vector<ImageKey> image_order;  // image content per placeholder, in splice order
  std::vector<float> image_rows;      // [n, hidden] in splice order
  int64_t image_rows_done = 0;        // rows already consumed by a shared prefix
  std::unique_ptr<Generation> gen;
  KvCache cache;
  std::vector<float> logits;
  bool first = true;
};

std::vector<QueryResult> Engine::run_batch(const std::vector<Query>& queries,
                                           const std::vector<GenerationOptions>& options) {
  LA_CHECK(queries.size() == options.size(), InvalidArgument, "run_batch: ", queries.size(), " queries but ",
           options.size(), " option sets");
  std::lock_guard<std::mutex> lock(run_mu_);
  PoolScope scope(pool_.get());
  Stopwatch total;
  std::vector<QueryResult> res(queries.size());
  std::vector<Row> rows(queries.size());
  const EncodedImages encoded = encode_images(queries, rows, res);
  build_prompts(queries, options, encoded, rows, res);
  share_prefixes(rows, res);
  decode(rows, res);
  collect(rows, res, total.seconds());
  return res;
}

// 1. Every distinct image (by content) is encoded once, through the cross-call cache when enabled.
Engine::EncodedImages Engine::encode_images(const std::vector<Query>& queries, std::vector<Row>& rows,
                                            std::vector<QueryResult>& res) {
  EncodedImages encoded;
  for (size_t b = 0; b < queries.size(); ++b) {
    const Query& q = queries[b];
    LA_CHECK(!q.images.empty(), InvalidArgument, "query ", b, " has no image; every query needs one");
    res[b].width = q.images[0].width;
    res[b].height = q.images[0].height;
    for (const ImageU8& img : q.images) {
      const ImageKey key = image_key(img);
      rows[b].keys.push_back(key);
      if (encoded.count(key)) continue;
      std::shared_ptr<const EncodedImage> enc = vision_cache_.find(key);
      if (!enc) {
        enc = encode(img, &res[b].timings);
        ++res[b].timings.images_encoded;
        vision_cache_.insert(key, enc);
      }
      encoded[key] = enc;
    }
  }
  return encoded;
}

// 2. Prompts, each row's image rows in placeholder order, and its generation state.
void Engine::build_prompts(const std::vector<Query>& queries, const std::vector<GenerationOptions>& options,
                           const EncodedImages& encoded, std::vector<Row>& rows, std::vector<QueryResult>& res) const {
  const int64_t H = cfg_.text.hidden;
  for (size_t b = 0; b < rows.size(); ++b) {
    Row& row = rows[b];
    std::vector<int64_t> counts;
    for (const ImageKey& k : row.keys) counts.push_back(encoded.at(k)->tokens);
    std::vector<int> order;
    row.ids = prompt_ids(queries[b].question, counts, queries[b].chat_template, &order);
    for (int k : order) {
      row.image_order.push_back(row.keys[k]);
      const auto& p = encoded.at(row.keys[k])->projected;
      row.image_rows.insert(row.image_rows.end(), p.begin(), p.end());
    }
    // Failures the reference would only hit deep inside generate(), named up front.
    const int64_t image_rows = static_cast<int64_t>(row.image_rows.size()) / H;
    LA_CHECK(std::count(row.ids.begin(), row.ids.end(), cfg_.ids.image_context) == image_rows, InvalidArgument,
             "query ", b, ": the question contains the reserved token <IMG_CONTEXT>, which marks where image features "
             "go; remove it from the question");
    LA_CHECK(cfg_.model_max_length <= 0 || static_cast<int64_t>(row.ids.size()) < cfg_.model_max_length,
             InvalidArgument, "query ", b, ": the prompt is ", row.ids.size(), " tokens (", image_rows,
             " of them image tokens), at or above the model's limit of ", cfg_.model_max_length,
             " (model_max_length): nothing could be generated. Shorten the question or pass a smaller image.");
    res[b].prompt_ids = row.ids;
    res[b].timings.prompt_tokens = static_cast<int64_t>(row.ids.size());
    res[b].timings.image_tokens = image_rows;
    row.gen = std::make_unique<Generation>(row.ids, options[b], cfg_.ids, cfg_.model_max_length, cfg_.text.vocab);
    row.cache = decoder_->new_cache();
  }
}

// 3. Rows with the same images share the KV cache of their longest common prompt prefix. The
// prefix stops before each row's last prompt token (the MTP anchor must be in the row's chunk).
// Batch-invariant kernels make the shared rows bit-identical to a one-shot prefill.
void Engine::share_prefixes(std::vector<Row>& rows, std::vector<QueryResult>& res) const {
  const size_t B = rows.size();
  std::vector<bool> grouped(B, false);
  for (size_t a = 0; a < B; ++a) {
    if (grouped[a] || rows[a].gen->done()) continue;
    std::vector<size_t> group = {a};
    for (size_t b = a + 1; b < B; ++b)
      if (!grouped[b] && !rows[b].gen->done() && rows[b].image_order == rows[a].image_order) group.push_back(b);
    if (group.size() < 2) continue;
    int64_t S = static_cast<int64_t>(rows[a].ids.size()) - 1;
    for (size_t g : group) {
      const auto& ids = rows[g].ids;
      int64_t n = 0;
      while (n < S && n < static_cast<int64_t>(ids.size()) - 1 && ids[n] == rows[a].ids[n]) ++n;
      S = std::min(S, n);
    }
    if (S < kMinSharedPrefix) continue;
    Stopwatch sw;
    const auto& ids = rows[a].ids;
    const int64_t image_in_prefix = std::count(ids.begin(), ids.begin() + S, cfg_.ids.image_context);
    const std::vector<int32_t> positions = first_positions(S);
    KvCache prefix = decoder_->new_cache();
    decoder_->forward({Decoder::Chunk::rows(&prefix, ids.data(), positions.data(), S)
                           .with_images(image_in_prefix ? rows[a].image_rows.data() : nullptr, image_in_prefix,
                                        cfg_.ids.image_context)},
                      scratch_);
    const double seconds = sw.seconds();
    for (size_t g : group) {
      grouped[g] = true;
      rows[g].cache = prefix.prefix_copy(S);
      rows[g].gen->skip_cached_prefix(S);
      rows[g].image_rows_done = image_in_prefix;
      res[g].timings.prefill += seconds;
      res[g].timings.shared_prefix_tokens = S;
    }
  }
}

// 4. Stacked decode: each step runs every active row's next chunk in one forward pass.
void Engine::decode(std::vector<Row>& rows, std::vector<QueryResult>& res) const {
  const int64_t H = cfg_.text.hidden;
  std::vector<size_t> active;
  for (size_t b = 0; b < rows.size(); ++b)
    if (!rows[b].gen->done()) active.push_back(b);
  std::vector<Decoder::Chunk> chunks;
  while (!active.empty()) {
    Stopwatch sw;
    chunks.clear();
    std::vector<StepTiming> step(active.size());
    for (size_t i = 0; i < active.size(); ++i) {
      Row& row = rows[active[i]];
      const Generation::Plan& plan = row.gen->plan();
      row.logits.resize(static_cast<size_t>(plan.n_logit_rows * cfg_.text.vocab));
      Decoder::Chunk ch = Decoder::Chunk::rows(&row.cache, plan.ids.data(), plan.positions.data(),
                                               static_cast<int64_t>(plan.ids.size()), plan.window)
                              .with_logits(plan.n_logit_rows, row.logits.data());
      if (row.first)
        ch.with_images(row.image_rows.data() + row.image_rows_done * H,
                       static_cast<int64_t>(row.image_rows.size()) / H - row.image_rows_done, cfg_.ids.image_context);
      chunks.push_back(ch);
      step[i].q_len = ch.q;
      step[i].mtp = plan.window > 0;
    }
    decoder_->forward(chunks, scratch_);
    std::vector<size_t> still;
    for (size_t i = 0; i < active.size(); ++i) {
      Row& row = rows[active[i]];
      const size_t before = row.gen->result().tokens.size();
      row.cache.truncate(row.gen->plan_keep_length());
      row.gen->consume(row.logits.data());
      step[i].committed = static_cast<int64_t>(row.gen->result().tokens.size() - before);
      if (!row.gen->done()) still.push_back(active[i]);
    }
    const double seconds = sw.seconds();
    for (size_t i = 0; i < active.size(); ++i) {
      const size_t b = active[i];
      (rows[b].first ? res[b].timings.prefill : res[b].timings.decode) += seconds;
      rows[b].first = false;
      step[i].seconds = seconds;
      res[b].steps.push_back(step[i]);
    }
    active.swap(still);
  }
}

// 5. Answers, parsed and scored items, counts.
void Engine::collect(std::vector<Row>& rows, std::vector<QueryResult>& res, double elapsed) const {
  for (size_t b = 0; b < rows.size(); ++b) {
    QueryResult& r = res[b];
    r.generation = rows[b].gen->result();
    r.answer = tokenizer_.decode(r.generation.tokens);
    for (const auto& [label, toks] : r.generation.history) r.history.emplace_back(label, tokenizer_.decode(toks));
    r.detections = parse_answer(r.answer, r.width, r.height);
    score_detections(r.detections, r.generation.tokens, r.generation.token_probs, cfg_.ids);
    r.timings.generated_tokens = static_cast<int64_t>(r.generation.tokens.size());
    r.timings.forward_calls = r.generation.forward_calls;
    r.timings.total = elapsed;
  }
}

int quant_numerics_version() { return kQuantNumericsVersion; }

}  // namespace la

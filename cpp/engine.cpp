// Engine: loading and the query pipeline, top-down.
#include "engine.h"

#include <algorithm>

#include "core/error.h"
#include "core/timer.h"
#include "kernels/gemm.h"

namespace la {

Engine::Engine(const EngineOptions& options) : options_(options) {
  Stopwatch sw;
  LA_CHECK(options.quantization == "none", InvalidArgument, "quantization='", options.quantization,
           "' is not available; use quantization='none' (float32 compute from the checkpoint's weights)");
  LA_CHECK(options.threads >= 0, InvalidArgument, "threads must be >= 0 (0 = all cores), got ", options.threads);
  blas_single_threaded();
  pool_ = std::make_unique<ThreadPool>(options.threads);
  PoolScope scope(pool_.get());
  cfg_ = load_model_config(options.model_dir);
  tokenizer_ = Tokenizer::from_dir(options.model_dir);
  check_token_ids();
  if (cfg_.model_max_length == 0) cfg_.model_max_length = tokenizer_.model_max_length();
  weights_ = std::make_unique<WeightStore>(WeightStore::open(options.model_dir));
  LA_CHECK(cfg_.quantization.method.empty(), InvalidArgument, "this checkpoint is quantised (",
           cfg_.quantization.method, "); quantised checkpoints need quantization='int4'");
  vision_ = std::make_unique<VisionTower>(cfg_.vision, *weights_);
  projector_ = std::make_unique<Projector>(cfg_.vision, cfg_.text, *weights_);
  decoder_ = std::make_unique<Decoder>(cfg_.text, *weights_);
  if (decoder_->tied_head_max_diff() > 0.0f)
    notes_.push_back(str_cat("the checkpoint stores language_model.lm_head.weight, which differs from the tied "
                             "embedding by up to ", decoder_->tied_head_max_diff(),
                             "; the embedding is used, as in the reference"));
  load_seconds_ = sw.seconds();
}

Engine::~Engine() = default;

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

VisionOutput Engine::encode_image(const PixelValues& px) const {
  VisionOutput out;
  out.grid_h = px.grid_h;
  out.grid_w = px.grid_w;
  out.tokens = static_cast<int64_t>(px.grid_h / cfg_.vision.merge_h) * (px.grid_w / cfg_.vision.merge_w);
  out.merged = vision_merged(px.data.data(), px.grid_h, px.grid_w);
  out.projected = project(out.merged.data(), out.tokens);
  return out;
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
  std::vector<int32_t> positions(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) positions[i] = static_cast<int32_t>(i);
  std::vector<float> logits(static_cast<size_t>(last_n * cfg_.text.vocab));
  Decoder::Chunk ch;
  ch.cache = &cache;
  ch.ids = ids.data();
  ch.positions = positions.data();
  ch.q = static_cast<int64_t>(ids.size());
  ch.image_rows = image_rows;
  ch.n_image_rows = n_image_rows;
  ch.image_token = cfg_.ids.image_context;
  ch.n_logit_rows = last_n;
  ch.logits = logits.data();
  decoder_->forward({ch});
  return logits;
}

QueryResult Engine::run(const Query& query, const GenerationOptions& options) {
  std::lock_guard<std::mutex> lock(run_mu_);
  PoolScope scope(pool_.get());
  Stopwatch total;
  QueryResult res;
  LA_CHECK(!query.images.empty(), InvalidArgument, "a query needs an image");
  res.width = query.images[0].width;
  res.height = query.images[0].height;

  // Preprocess and encode every image (image 1 and any visual prompts).
  Stopwatch sw;
  std::vector<PixelValues> pixels;
  for (const ImageU8& img : query.images) pixels.push_back(preprocess_image(img, cfg_.preprocess));
  res.timings.preprocess = sw.seconds();
  std::vector<VisionOutput> encoded(pixels.size());
  std::vector<int64_t> token_counts;
  for (size_t i = 0; i < pixels.size(); ++i) {
    sw.reset();
    encoded[i].grid_h = pixels[i].grid_h;
    encoded[i].grid_w = pixels[i].grid_w;
    encoded[i].tokens =
        static_cast<int64_t>(pixels[i].grid_h / cfg_.vision.merge_h) * (pixels[i].grid_w / cfg_.vision.merge_w);
    encoded[i].merged = vision_->forward(pixels[i].data.data(), pixels[i].grid_h, pixels[i].grid_w);
    res.timings.vision += sw.seconds();
    sw.reset();
    encoded[i].projected = projector_->forward(encoded[i].merged.data(), encoded[i].tokens);
    res.timings.projector += sw.seconds();
    token_counts.push_back(encoded[i].tokens);
  }

  // Prompt, and the image rows in placeholder order.
  std::vector<int> order;
  res.prompt_ids = prompt_ids(query.question, token_counts, query.chat_template, &order);
  const int64_t H = cfg_.text.hidden;
  std::vector<float> image_rows;
  for (int k : order) image_rows.insert(image_rows.end(), encoded[k].projected.begin(), encoded[k].projected.end());
  const int64_t n_image_rows = static_cast<int64_t>(image_rows.size()) / H;
  res.timings.prompt_tokens = static_cast<int64_t>(res.prompt_ids.size());
  res.timings.image_tokens = n_image_rows;

  // Decode loop: one forward per plan; the first carries the image rows.
  Generation gen(res.prompt_ids, options, cfg_.ids, cfg_.model_max_length, cfg_.text.vocab);
  KvCache cache = decoder_->new_cache();
  std::vector<float> logits;
  bool first = true;
  while (!gen.done()) {
    sw.reset();
    const Generation::Plan& plan = gen.plan();
    logits.resize(static_cast<size_t>(plan.n_logit_rows * cfg_.text.vocab));
    Decoder::Chunk ch;
    ch.cache = &cache;
    ch.ids = plan.ids.data();
    ch.positions = plan.positions.data();
    ch.q = static_cast<int64_t>(plan.ids.size());
    ch.window = plan.window;
    if (first) {
      ch.image_rows = image_rows.data();
      ch.n_image_rows = n_image_rows;
      ch.image_token = cfg_.ids.image_context;
    }
    ch.n_logit_rows = plan.n_logit_rows;
    ch.logits = logits.data();
    decoder_->forward({ch});
    cache.truncate(plan.keep_length);
    gen.consume(logits.data());
    (first ? res.timings.prefill : res.timings.decode) += sw.seconds();
    first = false;
  }

  res.generation = gen.result();
  res.answer = tokenizer_.decode(res.generation.tokens);
  for (const auto& [label, toks] : res.generation.history) res.history.emplace_back(label, tokenizer_.decode(toks));
  res.detections = parse_answer(res.answer, res.width, res.height);
  res.timings.generated_tokens = static_cast<int64_t>(res.generation.tokens.size());
  res.timings.forward_calls = res.generation.forward_calls;
  res.timings.total = total.seconds();
  return res;
}

}  // namespace la

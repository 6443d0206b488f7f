// config.json / preprocessor_config.json / tokenizer_config.json of a checkpoint, validated.
#pragma once

#include <cstdint>
#include <string>


namespace la {

// Which 1-D pass Pillow runs first when both sides change; the uint8 image between the passes makes
// the order visible in the output bytes.
enum class ResizePassOrder {
  // Pillow >= 13: vertical first when the height shrinks by more than twice as many pixels as the
  // width does (H - h > 2 * (W - w)), otherwise horizontal first.
  Pillow13,
  // Pillow 12.2 / 12.3 (the fixtures were made with 12.3): vertical first only for images more than
  // 100 times taller than wide whose height shrinks; horizontal first otherwise (the only order of
  // Pillow <= 12.1 and of every image the processor accepts).
  Pillow12,
};

// Preprocessing constants (from preprocessor_config.json / processor_config.json).
struct PreprocessConfig {
  int patch_size = 14;
  int merge_h = 2, merge_w = 2;
  int64_t in_token_limit = 25600;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};
  int max_grid_side = 512;  // the vision RoPE table size: a grid side must stay below it
  // The orders differ only for images over the token limit that are more than about twice as tall as
  // wide. Pillow13 follows the current Pillow; Pillow12 reproduces outputs made with Pillow 12.x.
  ResizePassOrder pass_order = ResizePassOrder::Pillow13;
};

struct VisionConfig {
  int hidden = 0, heads = 0, layers = 0, intermediate = 0;
  int patch = 14;
  int pos_h = 0, pos_w = 0;  // learnable position-embedding table size
  int merge_h = 2, merge_w = 2;
  float ln_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int head_dim() const { return hidden / heads; }
  int merged_dim() const { return hidden * merge_h * merge_w; }
};

struct TextConfig {
  int hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0;
  int vocab = 0;
  float rope_theta = 1e6f;
  float rms_eps = 1e-6f;
  bool tie_word_embeddings = true;
  int64_t max_position_embeddings = 32768;
  int block_size = 6;  // MTP window: anchor copy + 5 masks
  int head_dim() const { return hidden / heads; }
};

// Special token ids the decoding logic needs (all read from config.json, with the reference
// code's defaults where a key is absent; image_token_index defaults to the tokenizer's id).
struct TokenIds {
  int32_t image_context = -1;  // <IMG_CONTEXT>
  int32_t box_start = 151668, box_end = 151669;
  int32_t ref_start = 151672, ref_end = 151673;
  int32_t coord_start = 151677, coord_end = 152677;
  int32_t none = 4064;
  int32_t null = 152678;
  int32_t im_end = 151645;  // text_config.eos_token_id
  int32_t mask = 151676;    // text_config.text_mask_token_id
  int32_t switch_id = 152679;
  bool is_coord(int32_t id) const { return id >= coord_start && id <= coord_end; }
};

// AutoRound / GPTQ-style weight-only quantisation declared in config.json ("" when absent).
struct QuantizationConfig {
  std::string method;  // "auto-round", "gptq", ... ("" = unquantised checkpoint)
  int bits = 0;
  int group_size = 0;
  bool sym = true;
  std::string packing_format;  // e.g. "auto_round:auto_gptq"
};

struct ModelConfig {
  std::string dir;
  VisionConfig vision;
  TextConfig text;
  TokenIds ids;
  PreprocessConfig preprocess;
  QuantizationConfig quantization;
  int64_t model_max_length = 0;  // tokenizer_config.json (0 = absent: no cap beyond max_new_tokens)
};

// Reads and validates the configs of checkpoint folder `dir`. Missing config.json: FileNotFound;
// missing keys, wrong types or inconsistent values: RuntimeError naming the key and file.
ModelConfig load_model_config(const std::string& dir);

}  // namespace la

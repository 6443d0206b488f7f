// Config readers: every dimension comes from the checkpoint, every check names key and file.
#include "io/config.h"

#include <cfloat>
#include <climits>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/files.h"

namespace la {

namespace {

using nlohmann::json;

// v.dump() for error messages, but never into nested containers: dump() recurses, and a config.json
// of a million nested brackets overflowed the stack (a segfault) while the error was being written.
std::string shown(const json& v) {
  if (v.is_structured())
    for (const json& e : v)
      if (e.is_structured()) return v.is_array() ? "a nested array" : "a nested object";
  return v.dump();
}

// A JSON object together with where it came from, for messages.
struct Section {
  const json& j;
  std::string file;
  std::string prefix;  // "text_config." etc.

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t integer(const char* key) const {
    LA_CHECK(has(key), RuntimeError, file, ": required key '", prefix, key,
             "' is missing. Use the config.json that came with the checkpoint.");
    const json& v = j[key];
    LA_CHECK(v.is_number_integer(), RuntimeError, file, ": '", prefix, key, "' must be an integer, got ",
             shown(v));
    return v.get<int64_t>();
  }
  int64_t integer_or(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  // integer_or for int fields: a bare cast would silently turn 4294967298 into 2.
  int int_or(const char* key, int fallback) const {
    const int64_t v = integer_or(key, fallback);
    LA_CHECK(v >= INT_MIN && v <= INT_MAX, RuntimeError, file, ": '", prefix, key, "' = ", v, " is out of range");
    return static_cast<int>(v);
  }
  int positive(const char* key) const {
    int64_t v = integer(key);
    LA_CHECK(v > 0 && v < (1 << 30), RuntimeError, file, ": '", prefix, key, "' must be a positive integer, got ", v);
    return static_cast<int>(v);
  }
  double number_or(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    LA_CHECK(j[key].is_number(), RuntimeError, file, ": '", prefix, key, "' must be a number, got ",
             shown(j[key]));
    return j[key].get<double>();
  }
  // number_or for float fields: a double beyond FLT_MAX would become inf and turn the model into NaNs.
  float float_or(const char* key, double fallback) const {
    const double v = number_or(key, fallback);
    LA_CHECK(std::fabs(v) <= FLT_MAX, RuntimeError, file, ": '", prefix, key, "' = ", v,
             " is outside the float32 range");
    return static_cast<float>(v);
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    LA_CHECK(j[key].is_boolean(), RuntimeError, file, ": '", prefix, key, "' must be true/false, got ",
             shown(j[key]));
    return j[key].get<bool>();
  }
  Section child(const char* key) const {
    LA_CHECK(has(key) && j[key].is_object(), RuntimeError, file, ": required object '", prefix, key,
             "' is missing. Use the config.json that came with the checkpoint.");
    return Section{j[key], file, prefix + key + "."};
  }
};

void read_vision(const Section& v, VisionConfig& out) {
  out.hidden = v.positive("hidden_size");
  out.heads = v.positive("num_attention_heads");
  out.layers = v.positive("num_hidden_layers");
  out.intermediate = v.positive("intermediate_size");
  out.patch = v.int_or("patch_size", 14);
  out.pos_h = v.positive("init_pos_emb_height");
  out.pos_w = v.positive("init_pos_emb_width");
  if (v.has("merge_kernel_size")) {
    const json& m = v.j["merge_kernel_size"];
    // Range-checked before get<int>(), which would truncate 4294967298 to 2.
    auto small = [](const json& e) { return e.is_number_integer() && e.get<int64_t>() > 0 && e.get<int64_t>() <= 64; };
    LA_CHECK(m.is_array() && m.size() == 2 && small(m[0]) && small(m[1]), RuntimeError, v.file,
             ": 'vision_config.merge_kernel_size' must be a pair of integers in [1, 64], got ", shown(m));
    out.merge_h = m[0].get<int>();
    out.merge_w = m[1].get<int>();
  }
  out.ln_eps = v.float_or("layer_norm_eps", 1e-5);
  LA_CHECK(out.patch > 0 && out.merge_h > 0 && out.merge_w > 0, RuntimeError, v.file,
           ": vision patch/merge sizes must be positive");
  // merged_dim() is an int product; keep it from overflowing.
  LA_CHECK(static_cast<int64_t>(out.hidden) * out.merge_h * out.merge_w < (1 << 30), RuntimeError, v.file,
           ": vision hidden_size × merge_kernel_size is absurdly large");
  LA_CHECK(out.hidden % out.heads == 0, RuntimeError, v.file, ": vision hidden_size ", out.hidden,
           " is not divisible by num_attention_heads ", out.heads);
  LA_CHECK(out.head_dim() % 4 == 0, RuntimeError, v.file, ": the vision head size ", out.head_dim(),
           " must be divisible by 4 (2-D rotary embedding)");
}

void read_text(const Section& t, TextConfig& out) {
  out.hidden = t.positive("hidden_size");
  out.intermediate = t.positive("intermediate_size");
  out.layers = t.positive("num_hidden_layers");
  out.heads = t.positive("num_attention_heads");
  out.kv_heads = t.int_or("num_key_value_heads", out.heads);
  out.vocab = t.positive("vocab_size");
  out.rope_theta = t.float_or("rope_theta", 10000.0);
  out.rms_eps = t.float_or("rms_norm_eps", 1e-6);
  out.tie_word_embeddings = t.boolean_or("tie_word_embeddings", true);
  out.max_position_embeddings = t.integer_or("max_position_embeddings", 32768);
  out.block_size = t.int_or("block_size", 6);
  LA_CHECK(out.kv_heads > 0 && out.heads % out.kv_heads == 0, RuntimeError, t.file,
           ": num_attention_heads ", out.heads, " is not a multiple of num_key_value_heads ", out.kv_heads);
  LA_CHECK(out.hidden % out.heads == 0 && out.head_dim() % 2 == 0, RuntimeError, t.file, ": text hidden_size ",
           out.hidden, " does not split into ", out.heads, " heads of even size");
  LA_CHECK(out.block_size == 6, RuntimeError, t.file, ": text_config.block_size is ", out.block_size,
           "; parallel box decoding is defined for blocks of 6 (anchor + 5 masks) only");
  LA_CHECK(out.rope_theta > 0 && out.rms_eps > 0, RuntimeError, t.file, ": rope_theta and rms_norm_eps must be > 0");
}

int32_t id_or(const Section& s, const char* key, int32_t fallback, int vocab) {
  int64_t v = s.integer_or(key, fallback);
  LA_CHECK(v >= 0 && v < vocab, RuntimeError, s.file, ": token id '", s.prefix, key, "' = ", v,
           " is outside the vocabulary [0, ", vocab, ")");
  return static_cast<int32_t>(v);
}

}  // namespace

ModelConfig load_model_config(const std::string& dir) {
  LA_CHECK(dir_exists(dir), FileNotFound, "model folder not found: '", dir, "'");
  ModelConfig cfg;
  cfg.dir = dir;
  const std::string path = checkpoint_file(dir, "config.json");
  const json root = read_json_file(path);
  LA_CHECK(root.is_object(), RuntimeError, path, ": expected a JSON object");
  Section top{root, path, ""};
  read_vision(top.child("vision_config"), cfg.vision);
  Section text = top.child("text_config");
  read_text(text, cfg.text);

  const int vocab = cfg.text.vocab;
  TokenIds& ids = cfg.ids;
  ids.image_context = top.has("image_token_index") ? id_or(top, "image_token_index", 0, vocab) : -1;
  ids.box_start = id_or(top, "box_start_token_id", ids.box_start, vocab);
  ids.box_end = id_or(top, "box_end_token_id", ids.box_end, vocab);
  ids.coord_start = id_or(top, "coord_start_token_id", ids.coord_start, vocab);
  ids.coord_end = id_or(top, "coord_end_token_id", ids.coord_end, vocab);
  ids.ref_start = id_or(top, "ref_start_token_id", ids.ref_start, vocab);
  ids.ref_end = id_or(top, "ref_end_token_id", ids.ref_end, vocab);
  ids.none = id_or(top, "none_token_id", ids.none, vocab);
  ids.null = id_or(text, "null_token_id", ids.null, vocab);
  ids.im_end = id_or(text, "eos_token_id", ids.im_end, vocab);
  ids.mask = id_or(text, "text_mask_token_id", ids.mask, vocab);
  ids.switch_id = id_or(text, "switch_token_id", ids.switch_id, vocab);
  LA_CHECK(ids.coord_start <= ids.coord_end, RuntimeError, path, ": coord_start_token_id ", ids.coord_start,
           " is above coord_end_token_id ", ids.coord_end);

  if (top.has("quantization_config")) {
    Section q = top.child("quantization_config");
    QuantizationConfig& qc = cfg.quantization;
    qc.method = q.has("quant_method") && q.j["quant_method"].is_string() ? q.j["quant_method"].get<std::string>()
                                                                         : std::string("unknown");
    qc.bits = q.int_or("bits", 4);
    qc.group_size = q.int_or("group_size", 128);
    qc.sym = q.boolean_or("sym", true);
    if (q.has("packing_format") && q.j["packing_format"].is_string())
      qc.packing_format = q.j["packing_format"].get<std::string>();
  }

  // Preprocessing: preprocessor_config.json overrides the processor defaults (in_token_limit!).
  PreprocessConfig& pre = cfg.preprocess;
  pre.patch_size = cfg.vision.patch;
  pre.merge_h = cfg.vision.merge_h;
  pre.merge_w = cfg.vision.merge_w;
  std::string pp = optional_checkpoint_file(dir, "preprocessor_config.json");
  if (!pp.empty()) {
    const json pj = read_json_file(pp);
    Section p{pj, pp, ""};
    pre.in_token_limit = p.integer_or("in_token_limit", 4096);
    pre.patch_size = p.int_or("patch_size", pre.patch_size);
    LA_CHECK(pre.in_token_limit > 0, RuntimeError, pp, ": in_token_limit must be positive");
    for (const char* key : {"image_mean", "image_std"}) {
      if (!p.has(key)) continue;
      const json& a = pj[key];
      // Each element checked: get<float>() throws a bare nlohmann type_error on a string (escaping the
      // error policy; found with the config fuzz target) and gives inf beyond FLT_MAX.
      auto is_float = [](const json& e) { return e.is_number() && std::fabs(e.get<double>()) <= FLT_MAX; };
      LA_CHECK(a.is_array() && a.size() == 3 && is_float(a[0]) && is_float(a[1]) && is_float(a[2]), RuntimeError, pp,
               ": '", key, "' must be a list of 3 numbers");
      for (int c = 0; c < 3; ++c) (key[6] == 'm' ? pre.mean : pre.std)[c] = a[c].get<float>();
    }
  } else {
    pre.in_token_limit = 4096;  // the image processor's class default when no preprocessor config exists
  }
  LA_CHECK(pre.patch_size == cfg.vision.patch, RuntimeError, pp, ": patch_size ", pre.patch_size,
           " differs from vision_config.patch_size ", cfg.vision.patch);

  std::string tc = optional_checkpoint_file(dir, "tokenizer_config.json");
  if (!tc.empty()) {
    const json tj = read_json_file(tc);
    if (tj.contains("model_max_length") && tj["model_max_length"].is_number()) {
      double m = tj["model_max_length"].get<double>();
      cfg.model_max_length = m > 0 && m < 1e15 ? static_cast<int64_t>(m) : 0;
    }
  }
  return cfg;
}

}  // namespace la

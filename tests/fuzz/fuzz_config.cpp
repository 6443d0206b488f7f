// libFuzzer target: load_model_config on a checkpoint folder written from the input. The input is
// split at "\n@@\n" into config.json, preprocessor_config.json and tokenizer_config.json (absent
// when the input has fewer parts). Either a policy error, or a config whose dimensions are sane.
#include <cstdio>
#include <string>

#include "fuzz_util.h"
#include "io/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const char* kFiles[] = {"config.json", "preprocessor_config.json", "tokenizer_config.json"};
  const std::string dir = la::fuzz::temp_dir();
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string path = dir + "/" + kFiles[i];
    std::remove(path.c_str());
    if (start > input.size()) continue;
    size_t end = input.find("\n@@\n", start);
    if (end == std::string::npos) end = input.size();
    la::fuzz::write_file(path, data + start, end - start);
    start = end + 4;
  }
  la::fuzz::allow_policy_errors([&] {
    const la::ModelConfig c = la::load_model_config(dir);
    const la::VisionConfig& v = c.vision;
    const la::TextConfig& t = c.text;
    if (v.hidden <= 0 || v.heads <= 0 || v.hidden % v.heads || v.head_dim() % 4 || v.patch <= 0 ||
        v.merge_h <= 0 || v.merge_w <= 0 || v.layers <= 0 || v.intermediate <= 0)
      std::abort();
    if (t.hidden <= 0 || t.heads <= 0 || t.kv_heads <= 0 || t.heads % t.kv_heads || t.vocab <= 0 ||
        t.block_size != 6 || !(t.rope_theta > 0) || !(t.rms_eps > 0))
      std::abort();
    for (int32_t id : {c.ids.box_start, c.ids.box_end, c.ids.coord_start, c.ids.coord_end, c.ids.im_end,
                       c.ids.mask, c.ids.null, c.ids.switch_id})
      if (id < 0 || id >= t.vocab) std::abort();
    if (c.preprocess.in_token_limit <= 0 || c.preprocess.patch_size != v.patch) std::abort();
  });
  return 0;
}

// Config reading: the fixture's dimensions and ids, and named errors for broken configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/config.h"
#include "io/files.h"
#include "test_util.h"

namespace la {
namespace {

TEST(Config, ReadsTinyFixture) {
  ModelConfig c = load_model_config(test::fixture("tiny-a"));
  EXPECT_EQ(c.vision.hidden, 64);
  EXPECT_EQ(c.vision.heads, 4);
  EXPECT_EQ(c.vision.pos_h, 8);
  EXPECT_EQ(c.text.hidden, 64);
  EXPECT_EQ(c.text.kv_heads, 2);
  EXPECT_EQ(c.text.vocab, 152681);
  EXPECT_EQ(c.ids.image_context, 151665);
  EXPECT_EQ(c.ids.mask, 151676);
  EXPECT_EQ(c.ids.null, 152678);
  EXPECT_EQ(c.ids.im_end, 151645);
  EXPECT_EQ(c.preprocess.in_token_limit, 25600);
  EXPECT_EQ(c.model_max_length, 16384);
  EXPECT_TRUE(c.quantization.method.empty());
}

TEST(Config, ReadsFullSizeDimensions) {
  const std::string dir = test::temp_dir("cfg_full");
  std::filesystem::copy_file(test::fixture("full-size/config.json"), dir + "/config.json");
  ModelConfig c = load_model_config(dir);
  EXPECT_EQ(c.vision.hidden, 1152);
  EXPECT_EQ(c.vision.head_dim(), 72);
  EXPECT_EQ(c.text.layers, 36);
  EXPECT_EQ(c.text.head_dim(), 128);
  EXPECT_EQ(c.preprocess.in_token_limit, 4096);  // no preprocessor_config.json: the class default
}

std::string broken_config_error(const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = test::temp_dir("cfg_broken");
  nlohmann::json j = read_json_file(test::fixture("tiny-a/config.json"));
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump();
  try {
    load_model_config(dir);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, NamedErrors) {
  EXPECT_NE(broken_config_error([](auto& j) { j["text_config"].erase("hidden_size"); }).find("text_config.hidden_size"),
            std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j["text_config"]["hidden_size"] = "big"; }).find("must be an integer"),
            std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j["text_config"]["num_key_value_heads"] = 3; }).find("multiple"),
            std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j["text_config"]["block_size"] = 4; }).find("block_size"),
            std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j["image_token_index"] = 999999999; }).find("image_token_index"),
            std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j.erase("vision_config"); }).find("vision_config"), std::string::npos);
  EXPECT_NE(broken_config_error([](auto& j) { j["vision_config"]["num_attention_heads"] = 3; }).find("divisible"),
            std::string::npos);
}

TEST(Config, DeeplyNestedJsonIsAnErrorNotACrash) {
  const std::string dir = test::temp_dir("cfg_nested");
  std::ofstream(dir + "/config.json") << "{\"vision_config\": " << std::string(1000000, '[')
                                      << std::string(1000000, ']') << "}";
  EXPECT_THROW(load_model_config(dir), RuntimeError);
}

TEST(Config, MissingOrInvalidFiles) {
  EXPECT_THROW(load_model_config("/nonexistent"), FileNotFound);
  const std::string dir = test::temp_dir("cfg_none");
  EXPECT_THROW(load_model_config(dir), FileNotFound);
  std::ofstream(dir + "/config.json") << "{ nope";
  EXPECT_THROW(load_model_config(dir), RuntimeError);
}

}  // namespace
}  // namespace la

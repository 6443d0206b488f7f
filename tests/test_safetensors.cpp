// safetensors reader: fixture checkpoint, sharded index, and every corruption named at load time.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace la {
namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string st_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

template <typename Exc>
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Exc& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

TEST(Safetensors, ReadsTheFixtureCheckpoint) {
  WeightStore ws = WeightStore::open(test::fixture("tiny-a"));
  const TensorView& t = ws.get("language_model.model.embed_tokens.weight");
  EXPECT_EQ(t.dtype, DType::BF16);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{152681, 64}));
  EXPECT_FALSE(ws.has("language_model.lm_head.weight"));
  EXPECT_NO_THROW(ws.expect("mlp1.1.weight", {64, 256}));
}

TEST(Safetensors, ConvertsAllFloatDtypes) {
  const std::string dir = test::temp_dir("st_dtypes");
  float f[2] = {1.5f, -2.25f};
  uint16_t b[2] = {f32_to_bf16(1.5f), f32_to_bf16(-2.25f)};
  uint16_t h[2] = {f32_to_f16(1.5f), f32_to_f16(-2.25f)};
  std::string data(reinterpret_cast<char*>(f), 8);
  data += std::string(reinterpret_cast<char*>(b), 4) + std::string(reinterpret_cast<char*>(h), 4);
  write_file(dir + "/model.safetensors",
             st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},)"
                      R"("c":{"dtype":"F16","shape":[2],"data_offsets":[12,16]}})",
                      data));
  WeightStore ws = WeightStore::open(dir);
  for (const char* name : {"a", "b", "c"}) {
    EXPECT_EQ(ws.get(name).float_at(0), 1.5f) << name;
    EXPECT_EQ(ws.get(name).float_at(1), -2.25f) << name;
  }
}

TEST(Safetensors, MisalignedTensorsAreCopiedAligned) {
  // A 1-byte tensor first puts the BF16 tensor at an odd offset; an odd header length shifts all.
  const std::string dir = test::temp_dir("st_misaligned");
  uint16_t b[2] = {f32_to_bf16(1.5f), f32_to_bf16(-2.25f)};
  std::string data = std::string(1, '\x07') + std::string(reinterpret_cast<char*>(b), 4);
  write_file(dir + "/model.safetensors",
             st_bytes(R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[1,5]}} )",
                      data));
  WeightStore ws = WeightStore::open(dir);
  const TensorView& t = ws.get("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 2, 0u);
  EXPECT_FALSE(t.mapped);
  EXPECT_EQ(t.float_at(0), 1.5f);
  EXPECT_EQ(t.float_at(1), -2.25f);
  ws.release(t);  // a no-op for private copies
  EXPECT_EQ(t.float_at(1), -2.25f);
}

TEST(Safetensors, ShardedIndex) {
  const std::string dir = test::temp_dir("st_sharded");
  std::string d4(4, '\0');
  write_file(dir + "/model-00001-of-00002.safetensors",
             st_bytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4));
  write_file(dir + "/model-00002-of-00002.safetensors",
             st_bytes(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d4));
  write_file(dir + "/model.safetensors.index.json",
             R"({"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})");
  WeightStore ws = WeightStore::open(dir);
  EXPECT_TRUE(ws.has("x"));
  EXPECT_TRUE(ws.has("y"));
  EXPECT_EQ(ws.files().size(), 2u);

  // A shard listed in the index but missing.
  std::remove((dir + "/model-00002-of-00002.safetensors").c_str());
  std::string msg = error_of<FileNotFound>([&] { WeightStore::open(dir); });
  EXPECT_NE(msg.find("model-00002-of-00002.safetensors"), std::string::npos) << msg;
}

TEST(Safetensors, CorruptionsAreNamed) {
  const std::string dir = test::temp_dir("st_bad");
  const std::string path = dir + "/model.safetensors";
  struct Case {
    std::string bytes, must_mention;
  } cases[] = {
      {"abc", "too short"},
      {st_bytes("{not json", ""), "not valid JSON"},
      {std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header claims"},
      {st_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')), "truncated"},
      {st_bytes(R"({"w":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')), "unknown dtype"},
      {st_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')), "needs 12 bytes"},
      {st_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0')), "negative"},
      {st_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", std::string(8, '\0')), "reversed"},
      {st_bytes(R"([1,2,3])", ""), "not a JSON object"},
  };
  for (const Case& c : cases) {
    write_file(path, c.bytes);
    std::string msg = error_of<RuntimeError>([&] { WeightStore::open(dir); });
    EXPECT_NE(msg.find(c.must_mention), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  }
}

TEST(Safetensors, MissingTensorAndWrongShape) {
  WeightStore ws = WeightStore::open(test::fixture("tiny-a"));
  std::string msg = error_of<RuntimeError>([&] { ws.get("vision_model.nope.weight"); });
  EXPECT_NE(msg.find("vision_model.nope.weight"), std::string::npos);
  msg = error_of<RuntimeError>([&] { ws.expect("mlp1.1.weight", {64, 128}); });
  EXPECT_NE(msg.find("mlp1.1.weight"), std::string::npos);
  EXPECT_NE(msg.find("[64, 256]"), std::string::npos) << msg;
}

TEST(Safetensors, MissingFolderAndWeights) {
  EXPECT_THROW(WeightStore::open("/nonexistent/model"), FileNotFound);
  const std::string dir = test::temp_dir("st_empty");
  EXPECT_THROW(WeightStore::open(dir), FileNotFound);
}


// n tensors of different sizes whose bytes (i + j) say where they came from.
std::vector<std::vector<uint8_t>> ramp_tensors(int n) {
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<uint8_t> t(static_cast<size_t>(1000 + 37 * i));
    for (size_t j = 0; j < t.size(); ++j) t[j] = static_cast<uint8_t>(i + j);
    out.push_back(std::move(t));
  }
  return out;
}

void expect_written(const std::string& path, const std::vector<std::vector<uint8_t>>& tensors) {
  WeightStore ws = WeightStore::open_files({path});
  EXPECT_EQ(ws.metadata("kind"), "test");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& t = ws.get("t" + std::to_string(i));
    ASSERT_EQ(t.nbytes, tensors[i].size());
    EXPECT_EQ(std::memcmp(t.data, tensors[i].data(), t.nbytes), 0) << "tensor " << i;
  }
}

TEST(SafetensorsWriter, StreamsTensorsAndReturnsViewsOfTheWrittenBytes) {
  // A roomy header (padded with spaces) and one that outgrows its room (copied behind a new one):
  // both read back equal, and the views returned while writing stay valid after finish().
  for (size_t reserve : {size_t(1) << 16, size_t(64)}) {
    const std::string dir = test::temp_dir("st_writer");
    const std::string path = dir + "/out.safetensors";
    const auto tensors = ramp_tensors(40);
    std::vector<std::shared_ptr<const void>> views;
    {
      SafetensorsWriter w(path, reserve);
      for (size_t i = 0; i < tensors.size(); ++i) {
        std::vector<uint8_t> copy = tensors[i];  // freed right after, as the loader frees its copy
        views.push_back(w.add({"t" + std::to_string(i), DType::U8, {static_cast<int64_t>(copy.size())}, copy.data(),
                               copy.size()}));
      }
      EXPECT_FALSE(file_exists(path)) << "visible before finish()";
      w.finish({{"kind", "test"}});
    }
    expect_written(path, tensors);
    for (size_t i = 0; i < tensors.size(); ++i)
      EXPECT_EQ(std::memcmp(views[i].get(), tensors[i].data(), tensors[i].size()), 0) << "view " << i;
    int leftovers = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) leftovers += e.path().filename() != "out.safetensors";
    EXPECT_EQ(leftovers, 0) << "temporary files left behind (reserve " << reserve << ")";
  }
}

TEST(SafetensorsWriter, AnUnfinishedWriterLeavesNothing) {
  const std::string dir = test::temp_dir("st_writer_abandoned");
  const std::string path = dir + "/out.safetensors";
  std::shared_ptr<const void> view;
  {
    SafetensorsWriter w(path, 4096);
    const std::vector<uint8_t> t(5000, 7);
    view = w.add({"t", DType::U8, {5000}, t.data(), t.size()});
  }
  EXPECT_EQ(static_cast<const uint8_t*>(view.get())[4999], 7) << "a view outlives its writer";
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(SafetensorsWriter, AnUnwritableFolderIsNamed) {
  const std::string msg = error_of<RuntimeError>([] { SafetensorsWriter w("/nonexistent/dir/out.safetensors", 64); });
  EXPECT_NE(msg.find("/nonexistent/dir/out.safetensors"), std::string::npos) << msg;
}

}  // namespace
}  // namespace la

// Memory-mapped safetensors checkpoints (single file or sharded through model.safetensors.index.json).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace la {

enum class DType { F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, BOOL };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // as written in safetensors headers ("BF16", ...)

// A read-only view of one tensor inside a mapped file.
struct TensorView {
  std::string name;
  std::string file;  // the shard it lives in (for error messages)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_str() const;  // "[2048, 4608]"
  // Element i as float32 (F32/F16/BF16 only; exact for all three).
  float float_at(int64_t i) const;
  // Whole tensor as float32 into `out` (numel() floats). F32/F16/BF16 only.
  void to_float(float* out) const;
};

// One mapped .safetensors file; the whole header is validated at open.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  std::string path_;
  const uint8_t* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder, by name.
class WeightStore {
 public:
  // Opens `model.safetensors.index.json` (sharded) or `model.safetensors` in `dir`, or else every
  // *.safetensors file there. Missing files: FileNotFound; corrupt headers: RuntimeError.
  static WeightStore open(const std::string& dir);
  // Opens explicit files (tests, packed caches).
  static WeightStore open_files(const std::vector<std::string>& paths);

  bool has(const std::string& name) const;
  // The tensor, or RuntimeError naming it and the files searched.
  const TensorView& get(const std::string& name) const;
  // get() plus a shape check and a floating dtype check (F32/F16/BF16).
  const TensorView& expect(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  const std::vector<std::string>& files() const { return files_; }
  // Bytes of all mapped files.
  size_t total_bytes() const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorView*> by_name_;
  std::vector<std::string> files_;
  std::string dir_;
};

}  // namespace la

// Memory-mapped safetensors checkpoints (single file or sharded through model.safetensors.index.json).
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>
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
  bool mapped = true;  // false: an aligned private copy (the file stored it misaligned)

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
  // random_access: no readahead on the mapping (checkpoints, where a quantised load reads only some
  // tensors); otherwise the kernel's normal readahead (packed caches, read whole).
  explicit SafetensorsFile(const std::string& path, bool random_access = true);
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
  std::vector<std::unique_ptr<uint64_t[]>> copies_;  // aligned copies of misaligned tensors
};

// One tensor to write: raw little-endian bytes of `dtype` and `shape`.
struct TensorBlob {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes a safetensors file atomically, one tensor at a time, so a caller never holds them all.
// - add() / reserve() + commit(): the tensor goes to a temporary file at once (write-back started)
//   and comes back as a mapping of the written bytes, which can replace the caller's copy. Views
//   stay valid after finish() and after the writer is gone.
// - finish(): the header (with `metadata` as "__metadata__") goes into the `header_reserve` bytes
//   kept free at the start, padded with spaces as the format allows; when it does not fit, into a
//   new file followed by a kernel-side copy of the data. Then fsync and rename, so a crash never
//   leaves a named file with missing data.
// - Failures throw RuntimeError naming the path. A writer destroyed unfinished removes its file; a
//   killed process leaves `<path>.tmp<pid>`, which the next builder under the cache lock deletes.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, size_t header_reserve);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next tensor written in place: reserve() grows the file by `nbytes` and returns that region
  // mapped writable (fill it, then commit() it with its name, dtype and shape; t.data is ignored).
  // Nothing is copied, and the pages are the file's own.
  void* reserve(size_t nbytes);
  std::shared_ptr<const void> commit(const TensorBlob& t);
  // reserve() + copy + commit().
  std::shared_ptr<const void> add(const TensorBlob& t);
  void finish(const std::map<std::string, std::string>& metadata);
  size_t data_bytes() const { return offset_; }

 private:
  [[noreturn]] void fail(const std::string& what);
  // Bytes [at, at + nbytes) of the file, mapped shared with `prot`; unmapped with the last owner.
  std::shared_ptr<const void> map(off_t at, size_t nbytes, int prot);
  std::string path_, tmp_;
  int fd_ = -1;
  size_t reserve_ = 0, offset_ = 0;
  std::vector<TensorBlob> entries_;  // data pointers unused: names, dtypes, shapes, sizes
  std::shared_ptr<void> pending_;    // the mapping reserve() returned
  size_t pending_bytes_ = 0;
};

// All tensors of a checkpoint folder, by name.
class WeightStore {
 public:
  // Opens `model.safetensors.index.json` (sharded) or `model.safetensors` in `dir`, or else every
  // *.safetensors file there. Missing files: FileNotFound; corrupt headers: RuntimeError.
  static WeightStore open(const std::string& dir);
  // Opens explicit files (tests, packed caches).
  static WeightStore open_files(const std::vector<std::string>& paths, bool random_access = true);

  bool has(const std::string& name) const;
  // The tensor, or RuntimeError naming it and the files searched.
  const TensorView& get(const std::string& name) const;
  // get() plus a shape check and a floating dtype check (F32/F16/BF16).
  const TensorView& expect(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  const std::vector<std::string>& files() const { return files_; }
  // A "__metadata__" value of the first file ("" when absent).
  std::string metadata(const std::string& key) const;
  // Bytes of all mapped files.
  size_t total_bytes() const;
  // Drops this process's resident pages of a tensor (after converting it): file-backed pages are
  // re-read from the page cache if touched again, so this only lowers the resident set.
  void release(const TensorView& t) const;
  // Starts reading a tensor's pages in the background (mappings are opened without readahead).
  void prefetch(const TensorView& t) const;

 private:
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorView*> by_name_;
  std::vector<std::string> files_;
  std::string dir_;
};

}  // namespace la

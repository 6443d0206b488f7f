// safetensors parsing: 8-byte header length, JSON header, raw little-endian data; every entry is
// checked against the file size so truncated or corrupt files fail at load with a named tensor.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "io/files.h"

namespace la {

namespace {

struct DTypeInfo {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", DType::F32, 4}, {"F16", DType::F16, 2},   {"BF16", DType::BF16, 2}, {"F64", DType::F64, 8},
    {"I8", DType::I8, 1},   {"U8", DType::U8, 1},     {"I16", DType::I16, 2},   {"U16", DType::U16, 2},
    {"I32", DType::I32, 4}, {"U32", DType::U32, 4},   {"I64", DType::I64, 8},   {"U64", DType::U64, 8},
    {"BOOL", DType::BOOL, 1},
};

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

const char* kRedownload = " Re-download this file (it is corrupt or incomplete).";

}  // namespace

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

float TensorView::float_at(int64_t i) const {
  switch (dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, data + 4 * i, 4);
      return f;
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      return bf16_to_f32(h);
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      return f16_to_f32(h);
    }
    default:
      throw InvalidArgument(str_cat("tensor '", name, "' in '", file, "' has dtype ", dtype_name(dtype),
                                    "; a floating-point tensor (F32, F16 or BF16) was expected"));
  }
}

void TensorView::to_float(float* out) const {
  const int64_t n = numel();
  if (n == 0) return;  // an empty tensor's `out` may be null, and memcpy(nullptr, ..., 0) is UB (fuzzing)
  if (dtype == DType::F32) {
    std::memcpy(out, data, n * 4);
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = float_at(i);
}

SafetensorsFile::SafetensorsFile(const std::string& path, bool random_access) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    LA_CHECK(errno != ENOENT, FileNotFound, "weight file not found: '", path, "'");
    throw RuntimeError(str_cat("cannot open weight file '", path, "': ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw RuntimeError(str_cat("cannot stat '", path, "': ", std::strerror(errno)));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ < 8) {
    ::close(fd);
    throw RuntimeError(str_cat("'", path, "' is ", size_, " bytes long, too short for a safetensors file.",
                               kRedownload));
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw RuntimeError(str_cat("cannot map '", path, "': ", std::strerror(errno)));
  map_ = static_cast<const uint8_t*>(m);
  // No readahead: reading one bias must not pull megabytes of neighbouring weights into the resident
  // set (a quantised load never needs the float decoder weights). Streamed tensors ask for their
  // pages with prefetch().
  if (random_access) ::madvise(m, size_, MADV_RANDOM);

  try {
    uint64_t header_len;
    std::memcpy(&header_len, map_, 8);
    LA_CHECK(header_len <= kMaxHeaderBytes && header_len <= size_ - 8, RuntimeError, "'", path,
             "': the header claims ", header_len, " bytes but the file holds ", size_ - 8,
             " after the length field; this is not a valid safetensors file.", kRedownload);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(map_ + 8, map_ + 8 + header_len);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for "1e999" (fuzzing)
      throw RuntimeError(str_cat("'", path, "': the safetensors header is not valid JSON (", e.what(), ").",
                                 kRedownload));
    }
    LA_CHECK(header.is_object(), RuntimeError, "'", path, "': the safetensors header is not a JSON object.",
             kRedownload);
    const uint8_t* data_start = map_ + 8 + header_len;
    const uint64_t data_size = size_ - 8 - header_len;
    for (auto it = header.begin(); it != header.end(); ++it) {
      const std::string& name = it.key();
      const auto& entry = it.value();
      if (name == "__metadata__") {
        if (entry.is_object())
          for (auto m2 = entry.begin(); m2 != entry.end(); ++m2)
            if (m2.value().is_string()) metadata_[m2.key()] = m2.value().get<std::string>();
        continue;
      }
      auto bad = [&](const std::string& why) {
        return RuntimeError(str_cat("'", path, "': tensor '", name, "': ", why, ".", kRedownload));
      };
      if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
          !entry.contains("data_offsets"))
        throw bad("entry lacks dtype/shape/data_offsets");
      TensorView t;
      t.name = name;
      t.file = path;
      const auto& dt = entry["dtype"];
      if (!dt.is_string()) throw bad("dtype is not a string");
      bool known = false;
      for (const auto& d : kDTypes)
        if (dt.get<std::string>() == d.name) {
          t.dtype = d.dtype;
          known = true;
        }
      if (!known) throw bad(str_cat("unknown dtype '", dt.get<std::string>(), "'"));
      const auto& shape = entry["shape"];
      if (!shape.is_array()) throw bad("shape is not an array");
      uint64_t numel = 1;
      for (const auto& d : shape) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) throw bad("shape holds a negative or non-integer size");
        int64_t v = d.get<int64_t>();
        if (v != 0 && numel > (1ull << 48) / static_cast<uint64_t>(v)) throw bad("shape is absurdly large");
        numel *= static_cast<uint64_t>(v);
        t.shape.push_back(v);
      }
      const auto& off = entry["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        throw bad("data_offsets is not a pair of non-negative integers");
      uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      if (begin > end) throw bad("data_offsets are reversed");
      if (end > data_size)
        throw bad(str_cat("its data ends at byte ", end, " of the data area, but the file holds only ", data_size,
                          " bytes there: the file is truncated"));
      if (end - begin != numel * dtype_size(t.dtype))
        throw bad(str_cat("shape ", t.shape_str(), " of ", t.dtype == DType::BF16 ? "BF16" : dtype_name(t.dtype),
                          " needs ", numel * dtype_size(t.dtype), " bytes but data_offsets span ", end - begin));
      t.data = data_start + begin;
      t.nbytes = end - begin;
      if (t.nbytes && reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0) {
        // Valid safetensors need not align tensors (the header length or an offset may be odd):
        // such a tensor gets an aligned private copy, since typed reads of it would be undefined.
        copies_.emplace_back(new uint64_t[(t.nbytes + 7) / 8]);
        std::memcpy(copies_.back().get(), t.data, t.nbytes);
        t.data = reinterpret_cast<const uint8_t*>(copies_.back().get());
        t.mapped = false;
      }
      tensors_.emplace(name, std::move(t));
    }
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(map_), size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

WeightStore WeightStore::open_files(const std::vector<std::string>& paths, bool random_access) {
  WeightStore ws;
  for (const auto& p : paths) {
    auto shard = std::make_shared<SafetensorsFile>(p, random_access);
    for (const auto& [name, view] : shard->tensors()) {
      LA_CHECK(!ws.by_name_.count(name), RuntimeError, "tensor '", name, "' appears in both '",
               ws.by_name_[name]->file, "' and '", p, "'; the checkpoint folder mixes two checkpoints.");
      ws.by_name_[name] = &view;
    }
    ws.shards_.push_back(std::move(shard));
    ws.files_.push_back(p);
  }
  return ws;
}

WeightStore WeightStore::open(const std::string& dir) {
  LA_CHECK(dir_exists(dir), FileNotFound, "model folder not found: '", dir, "'");
  std::string index = optional_checkpoint_file(dir, "model.safetensors.index.json");
  if (!index.empty()) {
    nlohmann::json j = read_json_file(index);
    LA_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), RuntimeError, "'", index,
             "' has no \"weight_map\" object.", kRedownload);
    std::vector<std::string> shard_names;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      LA_CHECK(it.value().is_string(), RuntimeError, "'", index, "': weight_map entry '", it.key(),
               "' is not a file name.");
      std::string s = it.value().get<std::string>();
      if (std::find(shard_names.begin(), shard_names.end(), s) == shard_names.end()) shard_names.push_back(s);
    }
    std::vector<std::string> paths;
    for (const auto& s : shard_names) {
      std::string p = optional_checkpoint_file(dir, s);
      LA_CHECK(!p.empty(), FileNotFound, "weight shard '", s, "' listed in '", index, "' is missing from '", dir,
               "'. Download all shards of the checkpoint.");
      paths.push_back(p);
    }
    WeightStore ws = open_files(paths);
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      auto found = ws.by_name_.find(it.key());
      LA_CHECK(found != ws.by_name_.end(), RuntimeError, "tensor '", it.key(), "' is listed in '", index,
               "' (shard '", it.value().get<std::string>(), "') but is not in that file.", kRedownload);
    }
    ws.dir_ = dir;
    return ws;
  }
  std::string single = optional_checkpoint_file(dir, "model.safetensors");
  std::vector<std::string> paths;
  if (!single.empty()) {
    paths.push_back(single);
  } else if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 12 && n.substr(n.size() - 12) == ".safetensors") paths.push_back(join_path(dir, n));
    }
    ::closedir(d);
    std::sort(paths.begin(), paths.end());
  }
  LA_CHECK(!paths.empty(), FileNotFound, "no weights in '", dir,
           "': expected model.safetensors or model.safetensors.index.json with its shards.");
  WeightStore ws = open_files(paths);
  ws.dir_ = dir;
  return ws;
}

bool WeightStore::has(const std::string& name) const { return by_name_.count(name) != 0; }

const TensorView& WeightStore::get(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    std::string files;
    for (size_t i = 0; i < files_.size() && i < 4; ++i) files += (i ? ", '" : "'") + files_[i] + "'";
    throw RuntimeError(str_cat("tensor '", name, "' is missing from the checkpoint (searched ", files,
                               "). The weights do not belong to a LocateAnything model, or a shard is incomplete."));
  }
  return *it->second;
}

const TensorView& WeightStore::expect(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView& t = get(name);
  TensorView want;
  want.shape = shape;
  LA_CHECK(t.shape == shape, RuntimeError, "tensor '", name, "' in '", t.file, "' has shape ", t.shape_str(),
           " but config.json implies ", want.shape_str(), ". config.json and the weights disagree; use the config "
           "that came with these weights.");
  LA_CHECK(t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16, RuntimeError, "tensor '", name,
           "' in '", t.file, "' has dtype ", dtype_name(t.dtype), "; F32, F16 or BF16 is required.");
  return t;
}

std::string WeightStore::metadata(const std::string& key) const {
  if (shards_.empty()) return "";
  auto it = shards_.front()->metadata().find(key);
  return it == shards_.front()->metadata().end() ? "" : it->second;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

void WeightStore::release(const TensorView& t) const {
  if (!t.mapped) return;  // a private copy: MADV_DONTNEED would zero it
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(t.data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void WeightStore::prefetch(const TensorView& t) const {
  if (!t.mapped || t.nbytes == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(begin), reinterpret_cast<uintptr_t>(t.data) + t.nbytes - begin, MADV_WILLNEED);
}

namespace {

// The JSON header of `tensors` laid out back to back, padded with spaces to a multiple of 8 and to
// at least `min_bytes`.
std::string header_text(const std::vector<TensorBlob>& tensors, const std::map<std::string, std::string>& metadata,
                        size_t min_bytes) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const TensorBlob& t : tensors) {
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::string text = header.dump();
  if (text.size() < min_bytes) text.append(min_bytes - text.size(), ' ');
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

bool write_all(int fd, const void* data, size_t n, off_t at) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, std::min<size_t>(n, size_t(1) << 30), at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    at += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, size_t header_reserve)
    : path_(std::move(path)), tmp_(path_ + ".tmp" + std::to_string(::getpid())),
      reserve_((std::max<size_t>(header_reserve, 64) + 7) / 8 * 8) {
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LA_CHECK(fd_ >= 0, RuntimeError, "cannot write '", tmp_, "': ", std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void SafetensorsWriter::fail(const std::string& what) {
  const std::string reason = std::strerror(errno);
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = -1;
  }
  throw RuntimeError(str_cat("writing '", path_, "' failed (", what, ": ", reason, "); check free disk space"));
}

void* SafetensorsWriter::reserve(size_t nbytes) {
  LA_CHECK(fd_ >= 0, RuntimeError, "SafetensorsWriter::reserve after finish");
  LA_ASSERT(!pending_, "SafetensorsWriter::reserve twice without commit");
  const off_t at = static_cast<off_t>(8 + reserve_ + offset_);
  if (::ftruncate(fd_, at + static_cast<off_t>(nbytes)) != 0) fail("ftruncate");
  // Disk space is claimed now, so a full disk is an error here and never a SIGBUS while the mapping
  // is filled (file systems without fallocate fall back on the populate below).
  if (nbytes > 0 && ::fallocate(fd_, 0, at, static_cast<off_t>(nbytes)) != 0 && errno != EOPNOTSUPP && errno != ENOSYS)
    fail("fallocate");
  std::shared_ptr<const void> region = map(at, nbytes, PROT_READ | PROT_WRITE);
#ifdef MADV_POPULATE_WRITE
  // One call faults in every page (rather than one fault per page as the tensor is filled), and
  // reports a page that cannot be had as an error (kernels before 5.14 do not know it: EINVAL).
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(region.get()) & ~(page - 1);
  const size_t span = reinterpret_cast<uintptr_t>(region.get()) + nbytes - first;
  if (nbytes > 0 && ::madvise(reinterpret_cast<void*>(first), span, MADV_POPULATE_WRITE) != 0 && errno != EINVAL)
    fail("populate");
#endif
  pending_ = std::const_pointer_cast<void>(region);
  pending_bytes_ = nbytes;
  return pending_.get();
}

std::shared_ptr<const void> SafetensorsWriter::map(off_t at, size_t nbytes, int prot) {
  // Mappings start on a page boundary; the view starts `at` bytes into the file.
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const off_t base = at / static_cast<off_t>(page) * static_cast<off_t>(page);
  const size_t len = std::max<size_t>(nbytes + static_cast<size_t>(at - base), 1);
  void* m = ::mmap(nullptr, len, prot, MAP_SHARED, fd_, base);
  if (m == MAP_FAILED) fail("mmap");
  const char* data = static_cast<const char*>(m) + (at - base);
  return std::shared_ptr<const void>(data, [m, len](const void*) { ::munmap(m, len); });
}

std::shared_ptr<const void> SafetensorsWriter::commit(const TensorBlob& t) {
  LA_ASSERT(pending_ && t.nbytes == pending_bytes_, "SafetensorsWriter::commit without a matching reserve");
  const off_t at = static_cast<off_t>(8 + reserve_ + offset_);
  // Start write-back now, so the final fsync finds little left to do.
  if (t.nbytes > 0) ::sync_file_range(fd_, at, static_cast<off_t>(t.nbytes), SYNC_FILE_RANGE_WRITE);
  entries_.push_back({t.name, t.dtype, t.shape, nullptr, t.nbytes});
  offset_ += t.nbytes;
  pending_bytes_ = 0;
  pending_.reset();
  // A fresh read-only mapping of the same pages: nothing is mapped into this process until read,
  // so the file being built never counts toward its resident set.
  return map(at, t.nbytes, PROT_READ);
}

std::shared_ptr<const void> SafetensorsWriter::add(const TensorBlob& t) {
  void* dst = reserve(t.nbytes);
  if (t.nbytes > 0) std::memcpy(dst, t.data, t.nbytes);
  return commit(t);
}

void SafetensorsWriter::finish(const std::map<std::string, std::string>& metadata) {
  LA_CHECK(fd_ >= 0, RuntimeError, "SafetensorsWriter::finish twice");
  LA_ASSERT(!pending_, "SafetensorsWriter::finish with a reserved tensor not committed");
  std::string text = header_text(entries_, metadata, reserve_);
  if (text.size() == reserve_) {
    const uint64_t n = text.size();
    if (!write_all(fd_, &n, 8, 0) || !write_all(fd_, text.data(), text.size(), 8)) fail("write");
  } else {
    // The header outgrew its room: a second file, header first, then the data copied in the kernel.
    // The views keep the first file's pages until they are released.
    const std::string tmp2 = tmp_ + "b";
    const int fd2 = ::open(tmp2.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd2 < 0) fail("open " + tmp2);
    const uint64_t n = text.size();
    bool ok = write_all(fd2, &n, 8, 0) && write_all(fd2, text.data(), text.size(), 8);
    loff_t in = static_cast<loff_t>(8 + reserve_), out = static_cast<loff_t>(8 + text.size());
    for (size_t left = offset_; ok && left > 0;) {
      const ssize_t c = ::copy_file_range(fd_, &in, fd2, &out, left, 0);
      if (c <= 0) {
        // Fall back to a plain copy (file systems without copy_file_range).
        std::vector<char> buf(size_t(1) << 20);
        while (ok && left > 0) {
          const ssize_t r = ::pread(fd_, buf.data(), std::min(buf.size(), left), in);
          ok = r > 0 && write_all(fd2, buf.data(), static_cast<size_t>(r), out);
          in += r;
          out += r;
          left -= static_cast<size_t>(std::max<ssize_t>(r, 0));
        }
        break;
      }
      left -= static_cast<size_t>(c);
    }
    ::close(fd_);
    ::unlink(tmp_.c_str());
    fd_ = fd2;
    tmp_ = tmp2;
    if (!ok) fail("copy");
  }
  // On disk before the rename makes it visible: a crash never leaves a named file with missing data.
  if (::fsync(fd_) != 0) fail("fsync");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("rename");
  ::close(fd_);
  fd_ = -1;
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const auto& s : shards_) n += s->file_size();
  return n;
}

}  // namespace la

// Packed cache policy: where the file lives, what makes it valid (fingerprint, plan, format version,
// per-tensor checksums), who builds it (an flock'd lock file) and how it is written (atomically).
#include "weights/packed_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "io/checksum.h"
#include "io/files.h"

namespace la {

namespace {

// Bumped whenever the packed tile layout or the cache's metadata changes, so stale caches are rebuilt.
const char* const kFormatVersion = "la-packed-3";

std::string fingerprint_of(const std::vector<std::string>& files) {
  // Resolved path, size and modification time of every weight file: cheap, changes whenever a file
  // does, and the same whether the model was named by a relative, absolute or linked path.
  std::string fp;
  for (const std::string& f : files) {
    struct stat st;
    const std::string path = resolved_path(f);
    if (::stat(path.c_str(), &st) == 0)
      fp += str_cat(path, ":", static_cast<int64_t>(st.st_size), ":", static_cast<int64_t>(st.st_mtime), ";");
  }
  return checksum_hex(checksum64(fp.data(), fp.size()));
}

bool writable_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return dir_exists(dir) && ::access(dir.c_str(), W_OK) == 0;
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// "size mtime_ns inode" of a file ("" when it cannot be read).
std::string file_identity(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  return str_cat(static_cast<int64_t>(st.st_size), " ", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec,
                 " ", static_cast<int64_t>(st.st_ino));
}

double lock_timeout_seconds() {
  if (const char* env = std::getenv("LOCATEANYTHING_CACHE_LOCK_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (*end == '\0' && v >= 0) return v;
  }
  return 1800;
}

}  // namespace

PackedCache::PackedCache(const std::string& setting, const std::string& model_dir,
                         const std::vector<std::string>& weight_files, const std::string& plan_tag)
    : fingerprint_(fingerprint_of(weight_files)), plan_tag_(plan_tag) {
  if (!setting.empty()) {
    path_ = setting;
    return;
  }
  const std::string dir = resolved_path(model_dir);
  std::string name = dir.substr(dir.find_last_of('/') + 1);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  const std::string file =
      str_cat(name, "-", checksum_hex(checksum64(dir.data(), dir.size())).substr(0, 10), "-", plan_tag, ".safetensors");
  std::vector<std::string> bases;
  if (const char* env = std::getenv("LOCATEANYTHING_CACHE"); env && *env) bases.push_back(env);
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    bases.push_back(std::string(xdg) + "/locateanything_native");
  if (const char* home = std::getenv("HOME"); home && *home)
    bases.push_back(std::string(home) + "/.cache/locateanything_native");
  for (const std::string& base : bases) {
    const std::string candidate = base + "/packed/" + file;
    if (file_exists(candidate) || writable_dir(base + "/packed")) {
      path_ = candidate;
      return;
    }
  }
  notes_.push_back(str_cat("no writable folder for the packed weight cache (tried ",
                           bases.empty() ? std::string("none: HOME is not set") : bases.front(),
                           bases.size() > 1 ? " and others" : "", "): every load quantises in memory; set "
                           "LOCATEANYTHING_CACHE to a writable folder to keep the cache"));
}

PackedCache::~PackedCache() { unlock(); }

std::unique_ptr<WeightStore> PackedCache::open() {
  if (path_.empty() || !file_exists(path_)) return nullptr;
  std::string problem;
  std::unique_ptr<WeightStore> ws;
  try {
    ws = std::make_unique<WeightStore>(WeightStore::open_files({path_}, /*random_access=*/false));
  } catch (const std::exception& e) {
    problem = e.what();  // truncated, bad header, offsets past the end
  }
  if (ws) {
    // Made from other weight files, another plan or an older layout: not corrupt, just stale.
    if (ws->metadata("fingerprint") != fingerprint_ || ws->metadata("plan") != plan_tag_ ||
        ws->metadata("format") != kFormatVersion)
      return nullptr;
    if (verified_by_sidecar()) return ws;
    nlohmann::json sums;
    try {
      sums = nlohmann::json::parse(ws->metadata("checksums"));
    } catch (const std::exception&) {
      problem = "its checksum table is unreadable";
    }
    if (problem.empty()) {
      for (const std::string& name : ws->names()) {
        const TensorView& t = ws->get(name);
        if (!sums.contains(name) || sums[name] != checksum_hex(checksum64(t.data, t.nbytes))) {
          problem = str_cat("tensor '", name, "' does not match its checksum");
          break;
        }
      }
      if (problem.empty() && sums.size() != ws->names().size()) problem = "its checksum table lists other tensors";
    }
    if (problem.empty()) {
      write_sidecar();
      return ws;
    }
  }
  const std::string dir = parent_dir(path_);
  LA_CHECK(::access(dir.c_str(), W_OK) == 0, RuntimeError, "the packed weight cache '", path_, "' is corrupt (",
           problem, ") and its folder is read-only, so it cannot be rebuilt: delete the file, point "
           "LOCATEANYTHING_CACHE at a writable folder, or load with packed_cache=False");
  notes_.push_back(str_cat("the packed weight cache ", path_, " is corrupt (", problem, "): rebuilding it"));
  return nullptr;
}

bool PackedCache::lock(const std::function<void(const std::string&)>& waiting) {
  if (path_.empty() || locked()) return locked();
  const std::string dir = parent_dir(path_);
  if (!writable_dir(dir)) {
    notes_.push_back(str_cat("the packed cache folder ", dir, " is not writable: quantising in memory"));
    return false;
  }
  const std::string lock_path = path_ + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    notes_.push_back(str_cat("cannot open the cache lock ", lock_path, ": ", std::strerror(errno)));
    return false;
  }
  const double timeout = lock_timeout_seconds();
  const auto start = std::chrono::steady_clock::now();
  bool told = false;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      notes_.push_back(str_cat("cannot lock ", lock_path, ": ", std::strerror(errno)));
      ::close(fd);
      return false;
    }
    if (!told && waiting) {
      waiting(str_cat("another process is building the packed weight cache ", path_, "; waiting for it (up to ",
                      static_cast<int64_t>(timeout), " s, LOCATEANYTHING_CACHE_LOCK_TIMEOUT)"));
      told = true;
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= timeout) {
      notes_.push_back(str_cat("gave up waiting for the cache lock ", lock_path, " after ", timeout,
                               " s: quantising in memory without writing the cache"));
      ::close(fd);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  lock_fd_ = fd;
  // Holding the lock, nobody else is writing: temporary files here are leftovers of a killed writer.
  std::error_code ec;
  const std::string base = path_.substr(path_.find_last_of('/') + 1) + ".tmp";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.path().filename().string().rfind(base, 0) == 0) std::filesystem::remove(entry.path(), ec);
  return true;
}

void PackedCache::unlock() {
  if (lock_fd_ < 0) return;
  ::flock(lock_fd_, LOCK_UN);
  ::close(lock_fd_);
  lock_fd_ = -1;
}

void* PackedCache::reserve(size_t nbytes, size_t max_tensors) {
  if (!locked() || abandoned_) return nullptr;
  try {
    if (!writer_) {
      // Room for the header: each entry takes ~100 bytes of layout and ~100 of checksum; the writer
      // copies the data behind a bigger header if this ever falls short.
      writer_ = std::make_unique<SafetensorsWriter>(path_, 4096 + 512 * std::max<size_t>(max_tensors, 1));
      sums_.clear();
    }
    return slot_ = writer_->reserve(nbytes);
  } catch (const RuntimeError& e) {
    abandon(e.what());
    return nullptr;
  }
}

std::shared_ptr<const void> PackedCache::commit(const std::string& name, size_t nbytes) {
  LA_ASSERT(writer_ != nullptr, "PackedCache::commit without reserve");
  sums_[name] = checksum_hex(checksum64(slot_, nbytes));  // while the bytes are still mapped and hot
  slot_ = nullptr;
  return writer_->commit({name, DType::U8, {static_cast<int64_t>(nbytes)}, nullptr, nbytes});
}

void PackedCache::abandon(const std::string& why) {
  notes_.push_back(std::string("could not write the packed weight cache: ") + why);
  writer_.reset();  // removes the temporary file; views already handed out stay valid
  abandoned_ = true;
}

void PackedCache::finish() {
  LA_ASSERT(writer_ != nullptr, "PackedCache::finish without add");
  nlohmann::json sums = nlohmann::json::object();
  for (const auto& [name, sum] : sums_) sums[name] = sum;
  std::unique_ptr<SafetensorsWriter> w = std::move(writer_);
  w->finish({{"fingerprint", fingerprint_}, {"plan", plan_tag_}, {"format", kFormatVersion}, {"checksums", sums.dump()}});
  write_sidecar();  // the checksums were computed from the bytes just written
}

bool PackedCache::verified_by_sidecar() const {
  if (const char* env = std::getenv("LOCATEANYTHING_VERIFY_CACHE"); env && std::string(env) == "always") return false;
  std::ifstream f(path_ + ".verified");
  std::string line;
  return f && std::getline(f, line) && !line.empty() && line == file_identity(path_);
}

void PackedCache::write_sidecar() const {
  // Best effort (a read-only folder simply verifies on every load); atomic like the cache itself.
  const std::string side = path_ + ".verified", tmp = side + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    if (!f) return;
    f << file_identity(path_) << "\n";
    if (!f) return;
  }
  if (std::rename(tmp.c_str(), side.c_str()) != 0) std::remove(tmp.c_str());
}

}  // namespace la

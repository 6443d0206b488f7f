// The packed weight cache: the quantised tensors of one checkpoint and plan in one safetensors file
// that every process on a node maps (pages shared). One process builds it under an inter-process
// lock while the others wait; every tensor carries a checksum, verified before first use.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace la {

class PackedCache {
 public:
  // `setting`: "" = the default folder ($LOCATEANYTHING_CACHE, else ~/.cache/locateanything_native;
  // the first that holds this cache or is writable), or an explicit file path. `weight_files` are the
  // checkpoint's files (they make the fingerprint); `plan_tag` names the quantisation plan.
  PackedCache(const std::string& setting, const std::string& model_dir, const std::vector<std::string>& weight_files,
              const std::string& plan_tag);
  ~PackedCache();
  PackedCache(const PackedCache&) = delete;
  PackedCache& operator=(const PackedCache&) = delete;

  // "" when no folder could hold a cache (notes() says why; loads then quantise in memory).
  const std::string& path() const { return path_; }

  // The cache if it exists, matches this checkpoint and plan, and its checksums hold; null otherwise.
  // A corrupt or truncated file is noted and left for the caller to rebuild; when it cannot be
  // rebuilt (its folder is read-only) this throws RuntimeError saying what to do.
  std::unique_ptr<WeightStore> open();

  // Takes the build lock (<path>.lock, flock: released by the kernel if the holder dies, so a stale
  // lock never blocks). Waits up to $LOCATEANYTHING_CACHE_LOCK_TIMEOUT seconds (default 1800),
  // calling `waiting` once with a sentence; false when the folder is read-only or the wait timed out.
  bool lock(const std::function<void(const std::string&)>& waiting);
  bool locked() const { return lock_fd_ >= 0; }
  void unlock();

  // Writes the cache one tensor at a time while a load makes them (call while holding the lock), so
  // a first load never holds the whole cache in private memory:
  // - reserve(): room for the next tensor, in the file being built (a temporary file until
  //   finish()); the caller quantises straight into it. `max_tensors` bounds how many will come (it
  //   sizes the room kept for the header). Null when writing failed (disk full, ...): the reason is
  //   in notes(), the build is abandoned, and the caller keeps its tensors in private memory.
  // - commit(): that tensor is complete. Its checksum is taken, its write-back started, and the
  //   returned view keeps its bytes mapped.
  // - finish(): fsync, rename into place, record as verified. A cache destroyed before finish()
  //   leaves nothing behind.
  void* reserve(size_t nbytes, size_t max_tensors);
  std::shared_ptr<const void> commit(const std::string& name, size_t nbytes);
  void finish();
  bool writing() const { return writer_ != nullptr; }

  const std::vector<std::string>& notes() const { return notes_; }

 private:
  bool verified_by_sidecar() const;
  void write_sidecar() const;
  void abandon(const std::string& why);

  std::string path_, fingerprint_, plan_tag_;
  int lock_fd_ = -1;
  std::vector<std::string> notes_;
  std::unique_ptr<SafetensorsWriter> writer_;
  std::map<std::string, std::string> sums_;  // checksums of the tensors written so far
  bool abandoned_ = false;
  void* slot_ = nullptr;  // the tensor reserve() handed out last
};

}  // namespace la

// The packed weight cache: the quantised tensors of one checkpoint and plan in one safetensors file
// that every process on a node maps (pages shared). One process builds it under an inter-process
// lock while the others wait; every tensor carries a checksum, verified before first use.
#pragma once

#include <functional>
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

  // Writes the tensors atomically (temporary file, fsync, rename) with their checksums and records
  // them as verified. Call while holding the lock.
  void write(const std::vector<TensorBlob>& tensors);

  const std::vector<std::string>& notes() const { return notes_; }

 private:
  bool verified_by_sidecar() const;
  void write_sidecar() const;

  std::string path_, fingerprint_, plan_tag_;
  int lock_fd_ = -1;
  std::vector<std::string> notes_;
};

}  // namespace la

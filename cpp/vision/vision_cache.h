// Encoded images keyed by pixel content: the same image is encoded once per call, and optionally
// kept across calls in a least-recently-used cache with a byte bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/image.h"

namespace la {

// 128 bits of content hash plus the size: equal keys mean equal images (collisions are ~2^-128).
struct ImageKey {
  uint64_t h1 = 0, h2 = 0;
  int width = 0, height = 0;
  bool operator==(const ImageKey& o) const {
    return h1 == o.h1 && h2 == o.h2 && width == o.width && height == o.height;
  }
};
struct ImageKeyHash {
  size_t operator()(const ImageKey& k) const { return static_cast<size_t>(k.h1 ^ (k.h2 << 1)); }
};
ImageKey image_key(const ImageU8& image);

// One image through preprocessing, the vision tower and the projector.
struct EncodedImage {
  int grid_h = 0, grid_w = 0;
  int64_t tokens = 0;
  std::vector<float> projected;  // [tokens, hidden]
  size_t bytes() const { return projected.size() * sizeof(float); }
};

class VisionCache {
 public:
  explicit VisionCache(size_t max_bytes = 0) : max_bytes_(max_bytes) {}
  // Bound in bytes of projected features; 0 disables the cache (and empties it).
  void set_max_bytes(size_t max_bytes);
  size_t max_bytes() const { return max_bytes_; }
  size_t bytes() const;
  size_t size() const;
  std::shared_ptr<const EncodedImage> find(const ImageKey& key);
  void insert(const ImageKey& key, std::shared_ptr<const EncodedImage> value);
  void clear();

 private:
  void evict_locked();

  mutable std::mutex mu_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  std::list<ImageKey> lru_;  // front = most recent
  struct Entry {
    std::shared_ptr<const EncodedImage> value;
    std::list<ImageKey>::iterator pos;
  };
  std::unordered_map<ImageKey, Entry, ImageKeyHash> map_;
};

}  // namespace la

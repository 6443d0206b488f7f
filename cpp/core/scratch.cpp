#include "core/scratch.h"

#include <cstdlib>

#include "core/error.h"

namespace la {

void* thread_scratch(ScratchSlot slot, int64_t bytes) {
  struct Buffer {
    void* p = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer bufs[static_cast<int>(ScratchSlot::Count)];
  Buffer& buf = bufs[static_cast<int>(slot)];
  if (buf.size < bytes) {
    std::free(buf.p);
    buf.p = nullptr;
    buf.size = 0;
    const int64_t size = (bytes + 63) / 64 * 64;
    buf.p = std::aligned_alloc(64, static_cast<size_t>(size));
    LA_CHECK(buf.p, RuntimeError, "out of memory allocating ", size, " bytes of per-thread scratch");
    buf.size = size;
  }
  return buf.p;
}

}  // namespace la

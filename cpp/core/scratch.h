// Per-thread scratch buffers that survive across calls, so hot loops neither allocate nor fault fresh
// pages in once warm.
#pragma once

#include <cstdint>

namespace la {

// One buffer per slot per thread; callers that may run on the same thread at the same time (one
// inside the other) use different slots.
enum class ScratchSlot { QuantGemm = 0, Attention = 1, AttentionPacked = 2, Activations = 3, Count = 4 };

// At least `bytes` bytes, 64-byte aligned, contents unspecified. Valid until the next call for the
// same slot on this thread (which may move it). Throws RuntimeError when out of memory.
void* thread_scratch(ScratchSlot slot, int64_t bytes);

}  // namespace la

// Named-tensor trace hook (off by default): model code reports intermediates by name so any stage
// can be dumped and compared with the reference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace la {

// Receives (name, layer or -1, data, shape). Installed per thread for the duration of a call.
using TraceSink = std::function<void(const std::string& name, int layer, const float* data,
                                     const std::vector<int64_t>& shape)>;

class TraceScope {
 public:
  explicit TraceScope(TraceSink* sink);
  ~TraceScope();

 private:
  TraceSink* previous_;
};

bool trace_enabled();
// Reports a row-major float tensor when a sink is installed; a no-op otherwise.
void trace(const char* name, int layer, const float* data, std::vector<int64_t> shape);

}  // namespace la

// Thread-local trace sink behind trace().
#include "core/trace.h"

namespace la {

namespace {
thread_local TraceSink* t_sink = nullptr;
}

TraceScope::TraceScope(TraceSink* sink) : previous_(t_sink) { t_sink = sink; }
TraceScope::~TraceScope() { t_sink = previous_; }

bool trace_enabled() { return t_sink != nullptr; }

void trace(const char* name, int layer, const float* data, std::vector<int64_t> shape) {
  if (t_sink) (*t_sink)(name, layer, data, shape);
}

}  // namespace la

// Out-of-line failure path of LA_ASSERT.
#include "core/error.h"

namespace la {

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
  throw RuntimeError(str_cat("internal error: assertion `", expr, "` failed at ", file, ":", line,
                             msg.empty() ? "" : ": ", msg,
                             " (this is a bug in locateanything_native; please report it)"));
}

}  // namespace la

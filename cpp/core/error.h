// One error policy for every layer: typed exceptions at API and IO boundaries, LA_ASSERT for invariants.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace la {

// Bad argument or bad data handed in by the caller (Python: ValueError).
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A file the caller pointed at does not exist (Python: FileNotFoundError).
struct FileNotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Anything else that went wrong at run time: corrupt files, resource limits (Python: RuntimeError).
struct RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments with operator<< into one message string.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace la

// Throws ExcType(message) when cond is false. Message parts are streamed: LA_CHECK(x > 0, InvalidArgument, "x=", x).
#define LA_CHECK(cond, ExcType, ...)                           \
  do {                                                         \
    if (!(cond)) throw ::la::ExcType(::la::str_cat(__VA_ARGS__)); \
  } while (0)

// Internal invariant; active in every build type. Raises RuntimeError (never aborts the host process).
#define LA_ASSERT(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond)) ::la::assert_fail(#cond, __FILE__, __LINE__, ::la::str_cat(__VA_ARGS__)); \
  } while (0)

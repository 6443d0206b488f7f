// Shared fuzz-target helpers: a private temp folder per process and the error-policy filter.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"

namespace la::fuzz {

// A fresh folder under $TMPDIR (or /tmp), removed when the process exits normally.
inline const std::string& temp_dir() {
  // Never destroyed: the atexit handler below runs after static destructors registered later.
  static const std::string* dir = [] {
    const char* base = std::getenv("TMPDIR");
    auto* tmpl = new std::string(std::string(base && *base ? base : "/tmp") + "/la_fuzz_XXXXXX");
    if (!::mkdtemp(tmpl->data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return tmpl;
  }();
  return *dir;
}

inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
}

// Runs fn and swallows only the exceptions the error policy (core/error.h) allows at an IO
// boundary. Anything else (std::bad_alloc, nlohmann::json::exception, std::out_of_range, ...)
// escapes, and libFuzzer reports it as a crash: it would reach Python as the wrong type.
template <typename Fn>
void allow_policy_errors(Fn&& fn) {
  try {
    fn();
  } catch (const la::InvalidArgument&) {
  } catch (const la::FileNotFound&) {
  } catch (const la::RuntimeError&) {
  }
}

// The build's fixture folder (LA_FIXTURES overrides, as in the GoogleTest suite).
inline std::string fixtures_dir() {
  if (const char* env = std::getenv("LA_FIXTURES")) return env;
  return LA_FIXTURES_DIR;
}

}  // namespace la::fuzz

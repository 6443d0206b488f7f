// Shared helpers for the GoogleTest suite: fixture paths, .npy/.npz reading, temp folders.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace la::test {

// Root of ../shared/fixtures (env LA_FIXTURES overrides the compiled-in path).
std::string fixtures_dir();
std::string fixture(const std::string& relative);
// A fresh empty folder for one test's files.
std::string temp_dir(const std::string& name);

// One array of an .npz file, converted to the element type asked for.
struct NpyArray {
  std::string dtype;  // numpy descr, e.g. "<f4", "<i4", "|i1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t numel() const;
  std::vector<float> as_float() const;
  std::vector<int32_t> as_int32() const;
};
// Reads every array of an uncompressed or deflate-compressed .npz.
std::map<std::string, NpyArray> read_npz(const std::string& path);

}  // namespace la::test

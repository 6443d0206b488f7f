// libFuzzer target: the safetensors reader (length prefix, JSON header, offsets) on arbitrary files.
// Either the file is rejected with a policy error, or every tensor it accepts lies inside the file
// at the offsets its header names, and can be read in full.
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = la::fuzz::temp_dir() + "/model.safetensors";
  la::fuzz::write_file(path, data, size);
  la::fuzz::allow_policy_errors([&] {
    la::SafetensorsFile f(path);
    if (f.file_size() != size) std::abort();
    if (f.tensors().empty()) return;
    // Accepted: re-read the (valid) header here to know where each tensor must be.
    uint64_t header_len;
    std::memcpy(&header_len, data, 8);
    const nlohmann::json header = nlohmann::json::parse(data + 8, data + 8 + header_len);
    for (const auto& [name, t] : f.tensors()) {
      const uint64_t begin = header.at(name).at("data_offsets").at(0).get<uint64_t>();
      if (8 + header_len + begin + t.nbytes > size) std::abort();
      if (t.nbytes != static_cast<size_t>(t.numel()) * la::dtype_size(t.dtype)) std::abort();
      // The view reads the mapped file; the input buffer (ASan-checked) holds the same bytes.
      if (t.nbytes && std::memcmp(t.data, data + 8 + header_len + begin, t.nbytes) != 0) std::abort();
      if (t.dtype == la::DType::F32 || t.dtype == la::DType::F16 || t.dtype == la::DType::BF16) {
        std::vector<float> out(static_cast<size_t>(t.numel()));
        t.to_float(out.data());
      } else if (t.numel() > 0) {
        bool threw = false;
        try {
          (void)t.float_at(0);
        } catch (const la::InvalidArgument&) {
          threw = true;
        }
        if (!threw) std::abort();  // float_at promises InvalidArgument for non-float dtypes
      }
    }
  });
  return 0;
}

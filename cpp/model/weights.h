// Loading checkpoint tensors into the forms the model code uses: float vectors for small
// parameters and LinearWeight views (mapped, never copied when F32/BF16) for matrices.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/linear.h"

namespace la {

// A linear layer's weight [out, in] (PyTorch layout) and optional bias, ready for the kernels.
struct LinearWeight {
  WeightFormat format = WeightFormat::F32;
  const void* data = nullptr;  // [out, in] elements of `format`
  int64_t out = 0, in = 0;
  std::vector<float> bias;               // empty = no bias
  std::shared_ptr<const void> owner;     // keeps converted data alive (null when it points into the mmap)

  // y[M, out] (row stride ldy) = x[M, in] (row stride ldx) · Wᵀ + bias, on the current pool.
  void apply(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const;
  // The whole weight as float32 [out, in] into `dst` (for the sgemm paths).
  void to_float(float* dst) const;
  size_t weight_bytes() const;
};

// Float copy of a tensor of exactly `shape` (any float dtype); errors name tensor and file.
std::vector<float> load_floats(const WeightStore& ws, const std::string& name, const std::vector<int64_t>& shape);

// Weight `name + ".weight"` of shape [out, in] (+ `name + ".bias"` [out] when with_bias).
// F32/BF16 checkpoints are used in place (memory-mapped); F16 is converted to F32 once.
LinearWeight load_linear(const WeightStore& ws, const std::string& name, int64_t out, int64_t in, bool with_bias);

}  // namespace la

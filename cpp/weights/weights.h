// Loading checkpoint tensors into the forms the model code uses: float vectors for small
// parameters and LinearWeight views (mapped, never copied when F32/BF16) for matrices.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/linear.h"
#include "kernels/quant.h"

namespace la {

// A linear layer's weight [out, in] (PyTorch layout) and optional bias, ready for the kernels:
// float storage (F32 / BF16, usually memory-mapped) or quantised tiles (kernels/quant.h).
struct LinearWeight {
  WeightFormat format = WeightFormat::F32;  // storage when not quantised
  bool quantized = false;
  QuantFormat qformat = QuantFormat::Q4_32;  // storage when quantised
  const void* data = nullptr;
  int64_t out = 0, in = 0;
  // Zero columns appended to the input when quantised (the kernels read K = in, a multiple of the
  // activation block; the layer itself reads in − pad_in). Inputs narrower than `in` are padded
  // with zeros before they are quantised.
  int64_t pad_in = 0;
  std::vector<float> bias;            // empty = no bias
  std::shared_ptr<const void> owner;  // keeps converted data alive (null when it points into a mapping)

  // y[M, out] (row stride ldy) = x[M, in] (row stride ldx) · Wᵀ + bias, on the current pool. A
  // quantised weight quantises x itself; use apply_quantized to share one quantised input.
  void apply(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const;
  // The same through OpenBLAS sgemm (float storage; y row stride = out): for the vision tower and
  // projector, whose many rows make sgemm faster and which need no batch invariance.
  void apply_sgemm(const float* x, int64_t M, float* y) const;
  // Quantised weights only: xq from quantise_activations (block-major, M rows of `in`).
  void apply_quantized(const BlockQ8A* xq, int64_t M, float* y, int64_t ldy) const;
  // The whole weight as float32 [out, in] into `dst` (dequantised when quantised).
  void to_float(float* dst) const;
  size_t weight_bytes() const;
};

// y_i = x · W_iᵀ for weights that all read the same x [M, K]: quantised ones share one quantised
// copy of x (quantised once per row, as the kernels' contract expects). When ldx < K (a weight with
// pad_in > 0 fed its unpadded rows), the rows are zero-padded to K first; rows with ldx ≥ K must
// hold zeros in the padded columns (the vision MLP keeps its hidden rows that wide).
struct LinearTarget {
  const LinearWeight* w;
  float* y;
  int64_t ldy;
};
void apply_linears(const float* x, int64_t M, int64_t ldx, const std::vector<LinearTarget>& targets,
                   std::vector<BlockQ8A>& scratch);

// A float32 weight [out, in] that owns its values (converted or padded copies).
LinearWeight owned_float_linear(std::vector<float> values, int64_t out, int64_t in, std::vector<float> bias);

// A quantised copy of a float weight (bias kept). K must be a multiple of the format's block size.
LinearWeight quantize_linear(const LinearWeight& w, QuantFormat fmt);
// The same into `out` (quant_matrix_bytes(fmt, w.out, w.in) bytes).
void quantize_linear_into(const LinearWeight& w, QuantFormat fmt, void* out);

// Float copy of a tensor of exactly `shape` (any float dtype); errors name tensor and file.
std::vector<float> load_floats(const WeightStore& ws, const std::string& name, const std::vector<int64_t>& shape);

// Weight `name + ".weight"` of shape [out, in] (+ `name + ".bias"` [out] when with_bias).
// F32/BF16 checkpoints are used in place (memory-mapped); F16 is converted to F32 once.
LinearWeight load_linear(const WeightStore& ws, const std::string& name, int64_t out, int64_t in, bool with_bias);

}  // namespace la

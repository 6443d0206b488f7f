// Tensor loading helpers shared by the vision tower, projector and decoder.
#include "model/weights.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace la {

std::vector<float> load_floats(const WeightStore& ws, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& t = ws.expect(name, shape);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  t.to_float(out.data());
  return out;
}

LinearWeight load_linear(const WeightStore& ws, const std::string& name, int64_t out, int64_t in, bool with_bias) {
  LinearWeight lw;
  lw.out = out;
  lw.in = in;
  const TensorView& t = ws.expect(name + ".weight", {out, in});
  if (t.dtype == DType::BF16) {
    lw.format = WeightFormat::BF16;
    lw.data = t.data;
  } else if (t.dtype == DType::F32) {
    lw.format = WeightFormat::F32;
    lw.data = t.data;
  } else {
    auto buf = std::make_shared<std::vector<float>>(static_cast<size_t>(t.numel()));
    t.to_float(buf->data());
    lw.format = WeightFormat::F32;
    lw.data = buf->data();
    lw.owner = buf;
  }
  if (with_bias) lw.bias = load_floats(ws, name + ".bias", {out});
  return lw;
}

void LinearWeight::apply(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const {
  linear_strided(x, M, ldx, in, data, format, out, bias.empty() ? nullptr : bias.data(), y, ldy);
}

void LinearWeight::to_float(float* dst) const {
  const int64_t n = out * in;
  if (format == WeightFormat::F32) {
    std::memcpy(dst, data, n * sizeof(float));
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(data);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
}

size_t LinearWeight::weight_bytes() const {
  return static_cast<size_t>(out * in) * (format == WeightFormat::F32 ? 4 : 2);
}

}  // namespace la

// Tensor loading helpers shared by the vision tower, projector and decoder.
#include "weights/weights.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/scratch.h"
#include "kernels/gemm.h"

namespace la {

std::vector<float> load_floats(const WeightStore& ws, const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& t = ws.expect(name, shape);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  t.to_float(out.data());
  ws.release(t);  // a private copy now: the mapped pages are not needed
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
    std::vector<float> values(static_cast<size_t>(t.numel()));
    t.to_float(values.data());
    lw = owned_float_linear(std::move(values), out, in, {});
  }
  if (with_bias) lw.bias = load_floats(ws, name + ".bias", {out});
  return lw;
}

namespace {

// apply_linears with the quantised copy of x in `xq` (room for M · K/32 blocks of the first quantised
// target's K).
void apply_linears_into(const float* x, int64_t M, int64_t ldx, const std::vector<LinearTarget>& targets,
                        BlockQ8A* xq) {
  // Pow2 activation scales as soon as one Q4 matrix reads x (quant.h; Q8 kernels take them too).
  ActScale mode = ActScale::Max;
  for (const LinearTarget& t : targets)
    if (t.w->quantized && activation_scale_for(t.w->qformat) == ActScale::Pow2) mode = ActScale::Pow2;
  bool quantized_input = false;
  for (const LinearTarget& t : targets) {
    if (!t.w->quantized) {
      t.w->apply(x, M, ldx, t.y, t.ldy);
      continue;
    }
    if (!quantized_input) {
      const int64_t K = t.w->in;
      if (ldx < K) {
        const int64_t used = K - t.w->pad_in;
        LA_CHECK(used <= ldx, InvalidArgument, "a quantised [", t.w->out, ", ", K, "] linear reads ", used,
                 " input columns but the rows hold ", ldx);
        std::vector<float> padded(static_cast<size_t>(M * K), 0.0f);
        for (int64_t m = 0; m < M; ++m) std::copy(x + m * ldx, x + m * ldx + used, padded.begin() + m * K);
        quantise_activations(padded.data(), M, K, K, mode, xq);
      } else {
        quantise_activations(x, M, K, ldx, mode, xq);
      }
      quantized_input = true;
    }
    t.w->apply_quantized(xq, M, t.y, t.ldy);
  }
}

int64_t quantised_input_blocks(const std::vector<LinearTarget>& targets, int64_t M) {
  for (const LinearTarget& t : targets)
    if (t.w->quantized) return M * (t.w->in / kQuantActBlock);
  return 0;
}

}  // namespace

void LinearWeight::apply(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const {
  if (quantized) {
    // The quantised copy of x lives in this thread's scratch: a fresh vector per call was zero-filled
    // and page-faulted in every time (megabytes per vision linear).
    const std::vector<LinearTarget> targets = {{this, y, ldy}};
    const int64_t blocks = quantised_input_blocks(targets, M);
    auto* xq = static_cast<BlockQ8A*>(thread_scratch(ScratchSlot::Activations, blocks * static_cast<int64_t>(sizeof(BlockQ8A))));
    apply_linears_into(x, M, ldx, targets, xq);
    return;
  }
  linear_strided(x, M, ldx, in, data, format, out, bias.empty() ? nullptr : bias.data(), y, ldy);
}

void LinearWeight::apply_sgemm(const float* x, int64_t M, float* y) const {
  LA_ASSERT(!quantized, "apply_sgemm on a quantised weight");
  const float* b = bias.empty() ? nullptr : bias.data();
  if (format == WeightFormat::BF16)
    gemm_nt_bf16(x, M, in, in, static_cast<const uint16_t*>(data), out, in, b, y, out);
  else
    gemm_nt(x, M, in, in, static_cast<const float*>(data), out, in, b, y, out);
}

void LinearWeight::apply_quantized(const BlockQ8A* xq, int64_t M, float* y, int64_t ldy) const {
  LA_ASSERT(quantized, "apply_quantized on a float weight");
  quant_linear(xq, M, in, data, qformat, out, bias.empty() ? nullptr : bias.data(), y, ldy);
}

void apply_linears(const float* x, int64_t M, int64_t ldx, const std::vector<LinearTarget>& targets,
                   std::vector<BlockQ8A>& scratch) {
  const size_t blocks = static_cast<size_t>(quantised_input_blocks(targets, M));
  if (scratch.size() < blocks) scratch.resize(blocks);  // never shrinks: no refill when K alternates
  apply_linears_into(x, M, ldx, targets, scratch.data());
}

LinearWeight owned_float_linear(std::vector<float> values, int64_t out, int64_t in, std::vector<float> bias) {
  LA_ASSERT(static_cast<int64_t>(values.size()) == out * in, "owned_float_linear: ", values.size(), " values for [",
            out, ", ", in, "]");
  auto buf = std::make_shared<std::vector<float>>(std::move(values));
  LinearWeight w;
  w.format = WeightFormat::F32;
  w.data = buf->data();
  w.owner = buf;
  w.out = out;
  w.in = in;
  w.bias = std::move(bias);
  return w;
}

void quantize_linear_into(const LinearWeight& w, QuantFormat fmt, void* out) {
  LA_ASSERT(!w.quantized, "quantize_linear on a quantised weight");
  LA_CHECK(w.in % quant_block_size(fmt) == 0, InvalidArgument, "a [", w.out, ", ", w.in, "] weight cannot use ",
           quant_format_name(fmt), ": its input size is not a multiple of ", quant_block_size(fmt));
  if (w.format == WeightFormat::BF16)
    quantise_weights_bf16(static_cast<const uint16_t*>(w.data), w.out, w.in, w.in, fmt, out);
  else
    quantise_weights(static_cast<const float*>(w.data), w.out, w.in, w.in, fmt, out);
}

LinearWeight quantize_linear(const LinearWeight& w, QuantFormat fmt) {
  LA_ASSERT(!w.quantized, "quantize_linear on a quantised weight");
  LinearWeight q;
  q.quantized = true;
  q.qformat = fmt;
  q.out = w.out;
  q.in = w.in;
  q.bias = w.bias;
  auto buf = std::shared_ptr<uint8_t>(new uint8_t[quant_matrix_bytes(fmt, w.out, w.in)], std::default_delete<uint8_t[]>());
  quantize_linear_into(w, fmt, buf.get());
  q.data = buf.get();
  q.owner = buf;
  return q;
}

void LinearWeight::to_float(float* dst) const {
  const int64_t n = out * in;
  if (quantized) {
    dequantise_weights(data, qformat, out, in, 0, out, dst);
    return;
  }
  if (format == WeightFormat::F32) {
    std::memcpy(dst, data, n * sizeof(float));
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(data);
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
  }
}

size_t LinearWeight::weight_bytes() const {
  if (quantized) return static_cast<size_t>(quant_matrix_bytes(qformat, out, in));
  return static_cast<size_t>(out * in) * (format == WeightFormat::F32 ? 4 : 2);
}

}  // namespace la

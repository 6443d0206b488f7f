// Weight loading policies for the decoder (float, quantised at load, AutoRound repack, packed cache).
#include "weights/weight_loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

#include "core/half.h"

namespace la {

std::vector<std::string> quantization_names() {
  return {"int4", "int4-b128", "int8", "none", "int4-visf", "int4-b128-visf", "int8-visf"};
}

QuantPlan QuantPlan::from_name(const std::string& name) {
  // A "-visf" suffix keeps the vision tower in float32 under any quantised decoder.
  const std::string visf = "-visf";
  if (name.size() > visf.size() && name.compare(name.size() - visf.size(), visf.size(), visf) == 0) {
    QuantPlan p = from_name(name.substr(0, name.size() - visf.size()));
    p.vision_q8 = false;
    return p;
  }
  QuantPlan p;
  if (name == "none") return p;
  if (name == "int8") {
    p.quantize = true;
    p.linear = QuantFormat::Q8_32;
    p.vision_q8 = true;
    return p;
  }
  // "int4" variants; the -head4 / -headf suffixes (the head reusing the Q4 table, or kept in the
  // checkpoint's float weights) exist to measure the choice of the default Q8 head.
  std::string base = name, head = "";
  for (const char* suffix : {"-head4", "-headf"}) {
    const size_t n = std::strlen(suffix);
    if (base.size() > n && base.compare(base.size() - n, n, suffix) == 0) {
      head = suffix;
      base.resize(base.size() - n);
    }
  }
  if (base == "int4" || base == "int4-b32" || base == "int4-b128") {
    p.quantize = true;
    p.linear = base == "int4-b128" ? QuantFormat::Q4_128 : QuantFormat::Q4_32;
    p.embedding_q4 = true;
    // The tied head keeps a separate Q8 copy by default: the logit error measured on the fixtures
    // with the Q4 table as head is several times larger (README, "INT4").
    p.head = head == "-head4" ? Head::Embedding : head == "-headf" ? Head::Float : Head::Q8;
    p.vision_q8 = true;
    return p;
  }
  throw InvalidArgument(str_cat("unknown quantization '", name,
                                "': use 'none' (float32 compute from the checkpoint's weights, exact), 'int8', "
                                "'int4' (blocks of 32, the default) or 'int4-b128', optionally with '-visf' to keep "
                                "the vision tower in float32"));
}

std::string QuantPlan::tag() const {
  std::string t = quantize ? quant_format_name(linear) : "float";
  if (embedding_q4) t += "-emb4";
  if (head == Head::Q8) t += "-head8";
  if (head == Head::Float && embedding_q4) t += "-headf";
  if (vision_q8) t += "-vis8";
  return t;
}

WeightLoader::WeightLoader(const WeightStore& ws, const QuantizationConfig& checkpoint_quant, const QuantPlan& plan,
                           const WeightStore* packed)
    : ws_(ws), ckpt_(checkpoint_quant), plan_(plan), packed_(packed) {}

LinearWeight WeightLoader::from_packed(const std::string& weight_name, int64_t out, int64_t in, QuantFormat fmt) {
  const std::string key = weight_name + "@" + quant_format_name(fmt);
  if (!packed_ || !packed_->has(key)) return LinearWeight{};
  const TensorView& t = packed_->get(key);
  LA_CHECK(t.dtype == DType::U8 && static_cast<int64_t>(t.nbytes) == quant_matrix_bytes(fmt, out, in), RuntimeError,
           "packed tensor '", key, "' in '", t.file, "' has the wrong size; delete that file to rebuild it");
  packed_->prefetch(t);
  LinearWeight w;
  w.quantized = true;
  w.qformat = fmt;
  w.out = out;
  w.in = in;
  w.data = t.data;
  return w;
}

LinearWeight WeightLoader::quantized(const std::string& weight_name, const LinearWeight& source, QuantFormat fmt) {
  LinearWeight cached = from_packed(weight_name, source.out, source.in, fmt);
  if (cached.data) {
    cached.bias = source.bias;
    return cached;
  }
  LinearWeight q = new_quantized(source.out, source.in, fmt);
  q.bias = source.bias;
  quantize_linear_into(source, fmt, const_cast<void*>(q.data));
  converted_bytes_ += source.weight_bytes();
  if (progress_) progress_(converted_bytes_);
  if (ws_.has(weight_name)) ws_.release(ws_.get(weight_name));
  return finish_new(std::move(q), weight_name + "@" + quant_format_name(fmt));
}

LinearWeight WeightLoader::new_quantized(int64_t out, int64_t in, QuantFormat fmt) {
  LinearWeight q;
  q.quantized = true;
  q.qformat = fmt;
  q.out = out;
  q.in = in;
  const size_t bytes = static_cast<size_t>(quant_matrix_bytes(fmt, out, in));
  void* slot = cache_ && !making_parts_ ? cache_->reserve(bytes, max_tensors_) : nullptr;
  if (!slot) {
    auto buf = std::shared_ptr<uint8_t>(new uint8_t[bytes], std::default_delete<uint8_t[]>());
    slot = buf.get();
    q.owner = std::move(buf);
  }
  q.data = slot;
  return q;
}

LinearWeight WeightLoader::finish_new(LinearWeight q, const std::string& key) {
  if (!q.owner) q.owner = cache_->commit(key, q.weight_bytes());  // no private buffer: a cache slot
  return q;
}

LinearWeight WeightLoader::linear(const std::string& name, int64_t out, int64_t in, bool with_bias) {
  const std::string weight_name = name + ".weight";
  if (ws_.has(name + ".qweight")) {
    // AutoRound / GPTQ int4: repack the codes and scales into Q4 tiles (exactly (q − 8)·scale).
    LA_CHECK(ckpt_.bits == 4 && ckpt_.sym, RuntimeError, "'", name, "' is a ", ckpt_.bits, "-bit ",
             ckpt_.sym ? "symmetric" : "asymmetric", " quantised weight; only symmetric 4-bit AutoRound/GPTQ "
             "checkpoints are supported");
    const int64_t g = ckpt_.group_size;
    LA_CHECK(g > 0, RuntimeError, "'", name, "' has group size ", g, " in config.json's quantization_config");
    const int64_t groups = (in + g - 1) / g, packed_rows = (in + 7) / 8;
    // Groups of 32 or 128 that divide K repack into our Q4 tiles as they are; other layouts (a group
    // size our tiles do not have, or a last group that is partial) are dequantised exactly to float.
    const bool repack = (g == 32 || g == 128) && in % g == 0;
    const QuantFormat fmt = g == 128 ? QuantFormat::Q4_128 : QuantFormat::Q4_32;
    const TensorView& qw = ws_.get(name + ".qweight");
    const TensorView& sc = ws_.get(name + ".scales");
    LA_CHECK(qw.dtype == DType::I32 && qw.shape == std::vector<int64_t>({packed_rows, out}), RuntimeError, "'", name,
             ".qweight' has dtype ", dtype_name(qw.dtype), " and shape ", qw.shape_str(), "; expected I32 [",
             packed_rows, ", ", out, "]");
    LA_CHECK(sc.dtype == DType::F16 && sc.shape == std::vector<int64_t>({groups, out}), RuntimeError, "'", name,
             ".scales' has dtype ", dtype_name(sc.dtype), " and shape ", sc.shape_str(), "; expected F16 [", groups,
             ", ", out, "]");
    if (ws_.has(name + ".g_idx")) {
      // Activation reordering (desc_act) would permute input channels between groups: only the
      // trivial order k / g is supported.
      const TensorView& gi = ws_.get(name + ".g_idx");
      LA_CHECK(gi.dtype == DType::I32 && gi.numel() == in, RuntimeError, "'", name, ".g_idx' has an unexpected layout");
      for (int64_t k = 0; k < in; ++k) {
        int32_t v;
        std::memcpy(&v, gi.data + 4 * k, 4);
        LA_CHECK(v == k / g, RuntimeError, "'", name, "' was quantised with activation reordering (desc_act); "
                 "re-export it without act-order");
      }
    }
    if (ws_.has(name + ".qzeros")) {
      // Symmetric 4-bit codes are centred on 8; GPTQ-style packing stores zero − 1 = 7.
      const TensorView& qz = ws_.get(name + ".qzeros");
      LA_CHECK(qz.dtype == DType::I32 && qz.numel() * 8 >= groups * out, RuntimeError, "'", name,
               ".qzeros' has an unexpected layout ", qz.shape_str());
      for (int64_t i = 0; i < qz.numel(); ++i) {
        uint32_t word;
        std::memcpy(&word, qz.data + 4 * i, 4);
        for (int j = 0; j < 8; ++j) {
          const uint32_t z = (word >> (4 * j)) & 15u;
          LA_CHECK(z == 8 || z == 7, RuntimeError, "'", name, ".qzeros' holds zero point ", z,
                   "; only symmetric quantisation (zero point 8) is supported");
        }
      }
    }
    std::vector<float> bias;
    if (with_bias) bias = load_floats(ws_, name + ".bias", {out});
    if (!repack) {
      // Exactly (q − 8)·scale in float32, [out, in]; then the plan's own format where K admits it.
      std::vector<float> f(static_cast<size_t>(out * in));
      const uint8_t* qwb = qw.data;
      const uint8_t* scb = sc.data;
      for (int64_t k = 0; k < in; ++k)
        for (int64_t o = 0; o < out; ++o) {
          uint32_t word;
          uint16_t half;
          std::memcpy(&word, qwb + 4 * ((k / 8) * out + o), 4);
          std::memcpy(&half, scb + 2 * ((k / g) * out + o), 2);
          const int code = static_cast<int>((word >> (4 * (k % 8))) & 15u);
          f[o * in + k] = static_cast<float>(code - 8) * f16_to_f32(half);
        }
      LinearWeight fw = owned_float_linear(std::move(f), out, in, std::move(bias));
      if (plan_.quantize)
        notes_.push_back(str_cat("'", name, "': AutoRound group size ", g, " does not tile its input size ", in,
                                 "; dequantised exactly and re-quantised as the plan says"));
      return plan_.quantize ? quantize_float(weight_name, fw) : fw;
    }
    LinearWeight w;
    w.quantized = true;
    w.qformat = fmt;
    w.out = out;
    w.in = in;
    auto buf = std::shared_ptr<uint8_t>(new uint8_t[quant_matrix_bytes(fmt, out, in)], std::default_delete<uint8_t[]>());
    repack_gptq_q4(reinterpret_cast<const int32_t*>(qw.data), reinterpret_cast<const uint16_t*>(sc.data), in, out, g,
                   buf.get());
    w.data = buf.get();
    w.owner = buf;
    w.bias = std::move(bias);
    if (!plan_.quantize) {
      // quantization="none" on a quantised checkpoint: float32 compute of exactly (q − 8)·scale.
      std::vector<float> f(static_cast<size_t>(out * in));
      w.to_float(f.data());
      return owned_float_linear(std::move(f), out, in, w.bias);
    }
    return w;
  }
  LinearWeight source = load_linear(ws_, name, out, in, with_bias);
  if (!plan_.quantize) {
    ws_.prefetch(ws_.get(weight_name));  // used in place: stream it in now
    return source;
  }
  return quantize_float(weight_name, source);
}

LinearWeight WeightLoader::quantize_float(const std::string& weight_name, const LinearWeight& source) {
  const int64_t in = source.in;
  if (in % quant_block_size(plan_.linear) != 0) {
    if (in % kQuantActBlock == 0 && plan_.linear == QuantFormat::Q4_128) return quantized(weight_name, source, QuantFormat::Q4_32);
    notes_.push_back(str_cat("'", weight_name, "' stays in float: its input size ", in,
                             " is not a multiple of the quantisation block"));
    return source;
  }
  return quantized(weight_name, source, plan_.linear);
}

int64_t WeightLoader::padded_input(int64_t in) { return (in + kQuantActBlock - 1) / kQuantActBlock * kQuantActBlock; }

LinearWeight WeightLoader::vision_linear(const std::string& name, int64_t out, int64_t in, bool with_bias) {
  LinearWeight source = load_linear(ws_, name, out, in, with_bias);
  if (!plan_.vision_q8) return source;
  const int64_t in_q = padded_input(in);
  if (in_q == in) return quantized(name + ".weight", source, QuantFormat::Q8_32);
  LinearWeight cached = from_packed(name + ".weight", out, in_q, QuantFormat::Q8_32);
  if (cached.data) {
    cached.bias = source.bias;
    cached.pad_in = in_q - in;
    return cached;
  }
  // Zero columns past `in`: they meet the zero padding of the activations.
  std::vector<float> padded(static_cast<size_t>(out * in_q), 0.0f), row(static_cast<size_t>(out * in));
  source.to_float(row.data());
  for (int64_t r = 0; r < out; ++r)
    std::copy(row.begin() + r * in, row.begin() + (r + 1) * in, padded.begin() + r * in_q);
  const LinearWeight wide = owned_float_linear(std::move(padded), out, in_q, source.bias);
  LinearWeight q = quantized(name + ".weight", wide, QuantFormat::Q8_32);
  q.pad_in = in_q - in;
  return q;
}

LinearWeight WeightLoader::stacked(const std::string& key, const std::vector<Part>& parts, int64_t in,
                                   std::vector<LinearWeight>* views) {
  if (!plan_.quantize || in % quant_block_size(plan_.linear) != 0) return LinearWeight{};
  int64_t total = 0;
  for (const Part& p : parts) {
    if (p.out % kQuantTileRows != 0) return LinearWeight{};  // parts must start on a tile row
    total += p.out;
  }
  const QuantFormat fmt = plan_.linear;
  LinearWeight all = from_packed(key + ".weight", total, in, fmt);
  std::vector<LinearWeight> separate;
  if (!all.data) {
    making_parts_ = true;  // the stacked matrix is cached instead of its parts
    for (const Part& p : parts) {
      try {
        separate.push_back(linear(p.name, p.out, in, p.with_bias));
      } catch (...) {
        making_parts_ = false;
        throw;
      }
      if (!separate.back().quantized || separate.back().qformat != fmt) {
        making_parts_ = false;  // the caller loads the parts apart, and they are cached apart
        return LinearWeight{};
      }
    }
    making_parts_ = false;
    all = new_quantized(total, in, fmt);
    int64_t offset = 0;
    for (const LinearWeight& w : separate) {
      std::memcpy(static_cast<uint8_t*>(const_cast<void*>(all.data)) + offset, w.data, w.weight_bytes());
      offset += static_cast<int64_t>(w.weight_bytes());
    }
    all = finish_new(std::move(all), key + ".weight@" + quant_format_name(fmt));
  }
  // Views of the parts (tile rows are stored row-major, so a part is a contiguous byte range).
  views->clear();
  int64_t row = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    LinearWeight v;
    v.quantized = true;
    v.qformat = fmt;
    v.out = parts[i].out;
    v.in = in;
    v.data = static_cast<const uint8_t*>(all.data) + quant_matrix_bytes(fmt, row, in);
    v.owner = all.owner;
    v.bias = !separate.empty() ? separate[i].bias
             : parts[i].with_bias ? load_floats(ws_, parts[i].name + ".bias", {parts[i].out}) : std::vector<float>{};
    all.bias.insert(all.bias.end(), v.bias.begin(), v.bias.end());
    row += parts[i].out;
    views->push_back(std::move(v));
  }
  if (static_cast<int64_t>(all.bias.size()) != total) all.bias.clear();  // no part has a bias
  return all;
}

LinearWeight WeightLoader::embedding(const std::string& name, int64_t vocab, int64_t hidden) {
  LinearWeight source = load_linear(ws_, name, vocab, hidden, false);
  if (!plan_.embedding_q4 || hidden % 32 != 0) return source;
  return quantized(name + ".weight", source, QuantFormat::Q4_32);
}

LinearWeight WeightLoader::tied_head(const LinearWeight& embedding, const std::string& embedding_name) {
  if (plan_.head == QuantPlan::Head::Q8 && embedding.in % 32 == 0) {
    // Quantise from the checkpoint's float table, not from the Q4 copy.
    LinearWeight source = load_linear(ws_, embedding_name, embedding.out, embedding.in, false);
    return quantized(embedding_name + ".weight#head", source, QuantFormat::Q8_32);
  }
  if (plan_.head == QuantPlan::Head::Float && embedding.quantized)
    return load_linear(ws_, embedding_name, embedding.out, embedding.in, false);
  return embedding;
}

}  // namespace la

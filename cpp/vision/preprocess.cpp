// Image preprocessing: RGB conversion, Pillow-exact bicubic resampling, the official resize rule,
// normalisation and patch layout (spec-vision-and-io §1).
#include "vision/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/cpu.h"
#include "core/error.h"
#include "core/thread_pool.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace la {
namespace {

// Pillow's 8-bit resampler keeps weights in 22-bit fixed point: 8 bits of pixel and 2 bits of
// headroom for the filter's overshoot still fit a signed 32-bit accumulator.
constexpr int kPrecisionBits = 22;

// The weights are rounded to 22 bits after normalisation, so a one-ulp change in the cubic can flip
// a weight's last bit. GCC contracts a*b+c into a fused multiply-add whenever FMA is enabled (its
// default -ffp-contract=fast, e.g. under -march=native), which Pillow's generic x86-64 build never
// does; contraction is therefore switched off for the coefficient code.
#if defined(__clang__)
#define LA_NO_FP_CONTRACT
#elif defined(__GNUC__)
#define LA_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define LA_NO_FP_CONTRACT
#endif

// Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC), support 2.
LA_NO_FP_CONTRACT double bicubic_kernel(double x) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Per-output-sample filter taps along one axis, already in fixed point.
struct AxisTaps {
  int ksize = 0;                // row stride of `weight`
  std::vector<int> first;       // [n_out] first input index used
  std::vector<int> count;       // [n_out] number of input samples used
  std::vector<int32_t> weight;  // [n_out][ksize] 22-bit fixed point, zero past `count`
  // The SIMD kernel's form of `weight`: each weight split as k = hi*256 + lo (lo in [0, 256)) so that
  // 16-bit multiply-adds reproduce the 32-bit products exactly; taps 2j and 2j+1 share one int32
  // (low half = tap 2j). [n_out][n_pairs].
  int n_pairs = 0;
  std::vector<int32_t> pair_hi, pair_lo;
  bool simd_ok = false;  // every hi fits in int16 (always, for normalised bicubic weights)
};

void pack_pairs(AxisTaps& taps) {
  const int n_out = static_cast<int>(taps.first.size());
  taps.n_pairs = (taps.ksize + 1) / 2;
  taps.pair_hi.assign(static_cast<size_t>(n_out) * taps.n_pairs, 0);
  taps.pair_lo.assign(static_cast<size_t>(n_out) * taps.n_pairs, 0);
  taps.simd_ok = true;
  for (int o = 0; o < n_out; ++o) {
    const int32_t* k = &taps.weight[static_cast<size_t>(o) * taps.ksize];
    for (int j = 0; j < taps.n_pairs; ++j) {
      uint32_t hi = 0, lo = 0;
      for (int half = 0; half < 2; ++half) {
        const int t = 2 * j + half;
        const int32_t kt = t < taps.ksize ? k[t] : 0;
        const int32_t h = kt >> 8;  // arithmetic shift: floor, so kt - h*256 is in [0, 256)
        if (h < INT16_MIN || h > INT16_MAX) taps.simd_ok = false;
        hi |= (static_cast<uint32_t>(h) & 0xFFFFu) << (16 * half);
        lo |= static_cast<uint32_t>(kt - h * 256) << (16 * half);
      }
      taps.pair_hi[static_cast<size_t>(o) * taps.n_pairs + j] = static_cast<int32_t>(hi);
      taps.pair_lo[static_cast<size_t>(o) * taps.n_pairs + j] = static_cast<int32_t>(lo);
    }
  }
}

// Reproduces Pillow's coefficient precomputation for the default box (0, n_in): the kernel is
// widened by the downscale factor (antialiasing), truncated at the borders and renormalised there.
LA_NO_FP_CONTRACT AxisTaps bicubic_taps(int n_in, int n_out) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  constexpr double kSupport = 2.0;
  // Pillow receives the box edges as C floats and subtracts them in float before widening.
  const double scale = static_cast<double>(static_cast<float>(n_in) - 0.0f) / n_out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = kSupport * filter_scale;
  // Pillow multiplies by the reciprocal rather than dividing; the two can differ in the last bit.
  const double inv_filter_scale = 1.0 / filter_scale;

  AxisTaps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(n_out);
  taps.count.resize(n_out);
  taps.weight.assign(static_cast<size_t>(n_out) * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  for (int o = 0; o < n_out; ++o) {
    const double center = (o + 0.5) * scale;
    // C casts truncate toward zero; that is the rounding Pillow applies to the window edges.
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > n_in) hi = n_in;
    const int n = hi - lo;
    LA_ASSERT(n >= 1 && n <= taps.ksize, "bicubic window of ", n, " taps for ", n_in, "->", n_out);
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      w[x] = bicubic_kernel((x + lo - center + 0.5) * inv_filter_scale);
      sum += w[x];
    }
    if (sum != 0.0) {
      for (int x = 0; x < n; ++x) w[x] /= sum;
    }
    int32_t* q = &taps.weight[static_cast<size_t>(o) * taps.ksize];
    for (int x = 0; x < n; ++x) {
      const double scaled = w[x] * (1 << kPrecisionBits);
      q[x] = static_cast<int32_t>(w[x] < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    taps.first[o] = lo;
    taps.count[o] = n;
  }
  pack_pairs(taps);
  return taps;
}

inline uint8_t clamp_fixed(int32_t acc) {
  // Arithmetic shift, as Pillow's table lookup on (acc >> 22) does.
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// One filtered sample: in[t * tap_stride] for t < n, weighted by k.
inline uint8_t filter_one(const uint8_t* in, ptrdiff_t tap_stride, const int32_t* k, int n) {
  int32_t acc = 1 << (kPrecisionBits - 1);
  for (int t = 0; t < n; ++t) acc += in[t * tap_stride] * k[t];
  return clamp_fixed(acc);
}

#if defined(__SSE2__)
// Sixteen independent lanes at once: out[i] = filter_one(in + i, tap_stride, k, n) for i < 16.
// Two taps are interleaved per 16-bit multiply-add; the weight halves (hi, lo) are summed
// separately and recombined as hi*256 + lo, which equals the 32-bit sum Pillow forms.
inline void filter16_sse2(const uint8_t* in, ptrdiff_t tap_stride, int n, const int32_t* pair_hi,
                          const int32_t* pair_lo, uint8_t* out) {
  const __m128i zero = _mm_setzero_si128();
  __m128i h0 = zero, h1 = zero, h2 = zero, h3 = zero, l0 = zero, l1 = zero, l2 = zero, l3 = zero;
  for (int t = 0, j = 0; t < n; t += 2, ++j) {
    const uint8_t* pa = in + t * tap_stride;
    // An odd last tap pairs with itself under a zero weight, so no row past the window is read.
    const uint8_t* pb = t + 1 < n ? pa + tap_stride : pa;
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pa));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pb));
    const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
    const __m128i v0 = _mm_unpacklo_epi8(ab_lo, zero), v1 = _mm_unpackhi_epi8(ab_lo, zero);
    const __m128i v2 = _mm_unpacklo_epi8(ab_hi, zero), v3 = _mm_unpackhi_epi8(ab_hi, zero);
    const __m128i wh = _mm_set1_epi32(pair_hi[j]), wl = _mm_set1_epi32(pair_lo[j]);
    h0 = _mm_add_epi32(h0, _mm_madd_epi16(v0, wh));
    h1 = _mm_add_epi32(h1, _mm_madd_epi16(v1, wh));
    h2 = _mm_add_epi32(h2, _mm_madd_epi16(v2, wh));
    h3 = _mm_add_epi32(h3, _mm_madd_epi16(v3, wh));
    l0 = _mm_add_epi32(l0, _mm_madd_epi16(v0, wl));
    l1 = _mm_add_epi32(l1, _mm_madd_epi16(v1, wl));
    l2 = _mm_add_epi32(l2, _mm_madd_epi16(v2, wl));
    l3 = _mm_add_epi32(l3, _mm_madd_epi16(v3, wl));
  }
  const __m128i half = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  auto finish = [&](__m128i h, __m128i l) {
    return _mm_srai_epi32(_mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(h, 8), l), half), kPrecisionBits);
  };
  // Saturating packs clamp to [0, 255] exactly like clamp_fixed.
  const __m128i r01 = _mm_packs_epi32(finish(h0, l0), finish(h1, l1));
  const __m128i r23 = _mm_packs_epi32(finish(h2, l2), finish(h3, l3));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(r01, r23));
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for a 16x16 byte tile.
inline void transpose16_sse2(const uint8_t* src, ptrdiff_t src_stride, uint8_t* dst, ptrdiff_t dst_stride) {
  __m128i r[16], a[16], b[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i * src_stride));
  // Each stage doubles the run of consecutive rows per column: 2, 4, 8, then 16.
  for (int i = 0; i < 8; ++i) {
    a[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);      // rows 2i..2i+1, columns 0..7
    a[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);  // columns 8..15
  }
  for (int i = 0; i < 4; ++i) {
    for (int h = 0; h < 2; ++h) {  // h: columns 0..7 or 8..15
      const __m128i x = a[h * 8 + 2 * i], y = a[h * 8 + 2 * i + 1];
      b[h * 8 + 2 * i] = _mm_unpacklo_epi16(x, y);      // rows 4i..4i+3, columns 8h+0..3
      b[h * 8 + 2 * i + 1] = _mm_unpackhi_epi16(x, y);  // columns 8h+4..7
    }
  }
  // b[h*8 + 2i + q]: rows 4i..4i+3, columns 8h + 4q .. +3.
  for (int g = 0; g < 4; ++g) {  // g = 2h + q: column group of 4
    const int h = g / 2, q = g % 2;
    for (int i = 0; i < 2; ++i) {  // rows 8i..8i+7
      const __m128i x = b[h * 8 + 2 * (2 * i) + q], y = b[h * 8 + 2 * (2 * i + 1) + q];
      a[g * 4 + 2 * i] = _mm_unpacklo_epi32(x, y);      // rows 8i..8i+7, columns 4g, 4g+1
      a[g * 4 + 2 * i + 1] = _mm_unpackhi_epi32(x, y);  // columns 4g+2, 4g+3
    }
  }
  for (int g = 0; g < 4; ++g) {
    for (int p = 0; p < 2; ++p) {  // column pair 4g+2p, 4g+2p+1
      const __m128i x = a[g * 4 + p], y = a[g * 4 + 2 + p];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (4 * g + 2 * p) * dst_stride), _mm_unpacklo_epi64(x, y));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (4 * g + 2 * p + 1) * dst_stride),
                       _mm_unpackhi_epi64(x, y));
    }
  }
}
#endif

bool use_simd(const AxisTaps& taps) {
#if defined(__SSE2__)
  // LA_ISA=scalar (or set_isa_cap) selects the scalar twin, as for every other kernel.
  return taps.simd_ok && active_isa() != Isa::Scalar;
#else
  return false;
#endif
}

// Horizontal pass, scalar: dst rows [y_begin, y_end) from source rows row0 + y.
void resample_rows_scalar(const uint8_t* src, size_t src_stride, int row0, const AxisTaps& taps, ImageU8& dst,
                          int64_t y_begin, int64_t y_end) {
  const size_t dst_stride = static_cast<size_t>(dst.width) * 3;
  for (int64_t y = y_begin; y < y_end; ++y) {
    const uint8_t* in = src + static_cast<size_t>(row0 + y) * src_stride;
    uint8_t* out = dst.rgb.data() + static_cast<size_t>(y) * dst_stride;
    for (int o = 0; o < dst.width; ++o) {
      const int32_t* k = &taps.weight[static_cast<size_t>(o) * taps.ksize];
      const uint8_t* p = in + static_cast<size_t>(taps.first[o]) * 3;
      for (int c = 0; c < 3; ++c) out[3 * o + c] = filter_one(p + c, 3, k, taps.count[o]);
    }
  }
}

// Horizontal pass over source rows [row0, row0 + dst.height): src W_in×H_in → dst W_out×rows.
void resample_rows(const uint8_t* src, int src_width, int row0, const AxisTaps& taps, ImageU8& dst) {
  const size_t src_stride = static_cast<size_t>(src_width) * 3;
  int64_t done = 0;
#if defined(__SSE2__)
  if (use_simd(taps)) {
    // Strips of 16 rows are transposed so that the 16 rows become the 16 SIMD lanes; then every
    // output sample is one filter16 call whose taps sit 3*16 bytes apart.
    const size_t dst_stride = static_cast<size_t>(dst.width) * 3;
    const int64_t n_strips = dst.height / 16;
    parallel_for(n_strips, 1, [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> cols_in(src_stride * 16), cols_out(dst_stride * 16);
      for (int64_t s = begin; s < end; ++s) {
        const uint8_t* rows = src + static_cast<size_t>(row0 + s * 16) * src_stride;
        size_t x = 0;
        for (; x + 16 <= src_stride; x += 16) transpose16_sse2(rows + x, src_stride, &cols_in[x * 16], 16);
        for (; x < src_stride; ++x)
          for (int r = 0; r < 16; ++r) cols_in[x * 16 + r] = rows[r * src_stride + x];
        for (int o = 0; o < dst.width; ++o) {
          const int32_t* hi = &taps.pair_hi[static_cast<size_t>(o) * taps.n_pairs];
          const int32_t* lo = &taps.pair_lo[static_cast<size_t>(o) * taps.n_pairs];
          const uint8_t* in = &cols_in[static_cast<size_t>(taps.first[o]) * 3 * 16];
          for (int c = 0; c < 3; ++c)
            filter16_sse2(in + c * 16, 3 * 16, taps.count[o], hi, lo, &cols_out[(3 * static_cast<size_t>(o) + c) * 16]);
        }
        uint8_t* out = dst.rgb.data() + static_cast<size_t>(s) * 16 * dst_stride;
        x = 0;
        for (; x + 16 <= dst_stride; x += 16) transpose16_sse2(&cols_out[x * 16], 16, out + x, dst_stride);
        for (; x < dst_stride; ++x)
          for (int r = 0; r < 16; ++r) out[r * dst_stride + x] = cols_out[x * 16 + r];
      }
    });
    done = n_strips * 16;
  }
#endif
  parallel_for(dst.height - done, 16, [&](int64_t begin, int64_t end) {
    resample_rows_scalar(src, src_stride, row0, taps, dst, done + begin, done + end);
  });
}

// Vertical pass: src rows are indexed relative to `row_offset` (the first row the horizontal pass
// produced); dst is W×H_out. Channels are independent, so a row is one flat run of W*3 samples.
void resample_columns(const uint8_t* src, int row_offset, const AxisTaps& taps, ImageU8& dst) {
  const size_t stride = static_cast<size_t>(dst.width) * 3;
  const bool simd = use_simd(taps);
  parallel_for(dst.height, 8, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y) {
      const int32_t* k = &taps.weight[static_cast<size_t>(y) * taps.ksize];
      const int n = taps.count[y];
      const uint8_t* rows = src + static_cast<size_t>(taps.first[y] - row_offset) * stride;
      uint8_t* out = dst.rgb.data() + static_cast<size_t>(y) * stride;
      size_t x = 0;
#if defined(__SSE2__)
      if (simd) {
        const int32_t* hi = &taps.pair_hi[static_cast<size_t>(y) * taps.n_pairs];
        const int32_t* lo = &taps.pair_lo[static_cast<size_t>(y) * taps.n_pairs];
        for (; x + 16 <= stride; x += 16) filter16_sse2(rows + x, static_cast<ptrdiff_t>(stride), n, hi, lo, out + x);
      }
#endif
      for (; x < stride; ++x) out[x] = filter_one(rows + x, static_cast<ptrdiff_t>(stride), k, n);
    }
  });
}

int64_t ceil_to_multiple(int64_t v, int64_t unit) { return (v + unit - 1) / unit * unit; }

void check_config(const PreprocessConfig& cfg) {
  LA_CHECK(cfg.patch_size > 0 && cfg.merge_h > 0 && cfg.merge_w > 0, InvalidArgument,
           "preprocess config has patch_size=", cfg.patch_size, " and merge kernel ", cfg.merge_h, "x",
           cfg.merge_w, "; all must be positive (the checkpoint uses patch 14 and merge 2x2)");
  LA_CHECK(cfg.in_token_limit > 0, InvalidArgument, "in_token_limit=", cfg.in_token_limit,
           " must be positive (the checkpoint's preprocessor_config.json uses 25600)");
  LA_CHECK(cfg.max_grid_side > 0, InvalidArgument, "max_grid_side=", cfg.max_grid_side,
           " must be positive (the vision RoPE table is 512x512)");
  for (int c = 0; c < 3; ++c) {
    LA_CHECK(cfg.std[c] != 0.0f, InvalidArgument, "image_std[", c,
             "] is 0; the normalisation divides by it (the checkpoint uses 0.5)");
  }
}

}  // namespace

ImageU8 to_rgb(const uint8_t* data, int height, int width, int channels, int64_t stride_h,
               int64_t stride_w, int64_t stride_c) {
  LA_CHECK(height > 0 && width > 0, InvalidArgument, "image is empty (", height, "x", width,
           " pixels, height x width); pass an image with at least one pixel");
  LA_CHECK(channels >= 1 && channels <= 4, InvalidArgument, "image has ", channels,
           " channels; expected 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)");
  LA_CHECK(data != nullptr, InvalidArgument, "image data pointer is null");
  ImageU8 out;
  out.width = width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(width) * height * 3);
  parallel_for(height, 64, [&](int64_t begin, int64_t end) {
    for (int64_t y = begin; y < end; ++y) {
      const uint8_t* row = data + y * stride_h;
      uint8_t* o = out.rgb.data() + static_cast<size_t>(y) * width * 3;
      if (channels == 3 && stride_w == 3 && stride_c == 1) {
        std::memcpy(o, row, static_cast<size_t>(width) * 3);
        continue;
      }
      for (int x = 0; x < width; ++x, o += 3) {
        const uint8_t* p = row + x * stride_w;
        switch (channels) {
          case 1:
          case 2:  // PIL "LA" -> "RGB" drops alpha without compositing.
            o[0] = o[1] = o[2] = p[0];
            break;
          case 3:
            o[0] = p[0];
            o[1] = p[stride_c];
            o[2] = p[2 * stride_c];
            break;
          default: {
            // The processor pastes RGBA onto white with alpha as mask; Pillow blends each channel
            // as (255*(255-a) + c*a) / 255 rounded by its exact integer DIV255.
            const int a = p[3 * stride_c];
            for (int c = 0; c < 3; ++c) {
              const int v = 255 * (255 - a) + p[c * stride_c] * a + 128;
              o[c] = static_cast<uint8_t>((v + (v >> 8)) >> 8);
            }
          }
        }
      }
    }
  });
  return out;
}

bool vertical_pass_first(int in_width, int in_height, int out_width, int out_height, ResizePassOrder order) {
  if (out_height >= in_height) return false;
  if (order == ResizePassOrder::Pillow12) return static_cast<int64_t>(in_height) > 100 * static_cast<int64_t>(in_width);
  // Pillow 13's test, on exact integers (Pillow's float box edges are exact for any real size).
  return static_cast<int64_t>(in_height) - out_height > 2 * (static_cast<int64_t>(in_width) - out_width);
}

ImageU8 resize_bicubic_pil(const ImageU8& src, int out_width, int out_height, ResizePassOrder order) {
  LA_CHECK(src.width > 0 && src.height > 0, InvalidArgument, "cannot resize an empty image (",
           src.width, "x", src.height, ")");
  LA_CHECK(src.rgb.size() == static_cast<size_t>(src.width) * src.height * 3, InvalidArgument,
           "ImageU8 holds ", src.rgb.size(), " bytes but ", src.width, "x", src.height,
           " RGB needs ", static_cast<size_t>(src.width) * src.height * 3);
  LA_CHECK(out_width > 0 && out_height > 0, InvalidArgument, "resize target ", out_width, "x",
           out_height, " must be at least 1x1");
  if (out_width == src.width && out_height == src.height) return src;

  const bool horizontal = out_width != src.width;
  const bool vertical = out_height != src.height;
  if (horizontal && vertical && vertical_pass_first(src.width, src.height, out_width, out_height, order)) {
    ImageU8 tmp{src.width, out_height, std::vector<uint8_t>(static_cast<size_t>(src.width) * out_height * 3)};
    resample_columns(src.rgb.data(), 0, bicubic_taps(src.height, out_height), tmp);
    ImageU8 out{out_width, out_height, std::vector<uint8_t>(static_cast<size_t>(out_width) * out_height * 3)};
    resample_rows(tmp.rgb.data(), tmp.width, 0, bicubic_taps(src.width, out_width), out);
    return out;
  }

  // Horizontal first. The vertical taps decide which source rows the horizontal pass must produce.
  const AxisTaps vtaps = bicubic_taps(src.height, out_height);
  const int row_first = vtaps.first.front();
  const int row_last = vtaps.first.back() + vtaps.count.back();
  const uint8_t* cur = src.rgb.data();
  int row_offset = 0;
  ImageU8 tmp;
  if (horizontal) {
    tmp.width = out_width;
    tmp.height = row_last - row_first;
    tmp.rgb.resize(static_cast<size_t>(tmp.width) * tmp.height * 3);
    resample_rows(src.rgb.data(), src.width, row_first, bicubic_taps(src.width, out_width), tmp);
    if (!vertical) return tmp;  // the row range is the whole image when the height is unchanged
    cur = tmp.rgb.data();
    row_offset = row_first;
  }
  ImageU8 out{out_width, out_height, std::vector<uint8_t>(static_cast<size_t>(out_width) * out_height * 3)};
  resample_columns(cur, row_offset, vtaps, out);
  return out;
}

ResizePlan plan_resize(int width, int height, const PreprocessConfig& cfg) {
  check_config(cfg);
  LA_CHECK(width > 0 && height > 0, InvalidArgument, "image is empty (", width, "x", height,
           " pixels, width x height); pass an image with at least one pixel");
  ResizePlan plan;
  plan.width0 = width;
  plan.height0 = height;
  const int64_t p = cfg.patch_size;
  const int64_t n0 = (width / p) * (height / p);
  int64_t w1 = width, h1 = height;
  if (n0 > cfg.in_token_limit) {
    // Python: s = math.sqrt(limit / n0); int(W * s). Int-to-double is exact here, so the true
    // division below rounds exactly as Python's does.
    const double s = std::sqrt(static_cast<double>(cfg.in_token_limit) / static_cast<double>(n0));
    w1 = static_cast<int64_t>(static_cast<double>(width) * s);
    h1 = static_cast<int64_t>(static_cast<double>(height) * s);
  }
  const int64_t w2 = ceil_to_multiple(w1, p * cfg.merge_w);
  const int64_t h2 = ceil_to_multiple(h1, p * cfg.merge_h);
  const int64_t gh = h2 / p, gw = w2 / p;
  if (gh >= cfg.max_grid_side || gw >= cfg.max_grid_side || w1 <= 0 || h1 <= 0) {
    // Largest even grid side below the limit, in pixels, and the aspect ratio a large image can
    // have once the token limit has scaled it to about in_token_limit patches.
    const int64_t max_side_patches = (cfg.max_grid_side - 1) / cfg.merge_w * cfg.merge_w;
    const double max_aspect = static_cast<double>(max_side_patches * max_side_patches) /
                              static_cast<double>(cfg.in_token_limit);
    throw InvalidArgument(str_cat(
        "image of ", width, "x", height, " (width x height) is too elongated: the preprocessing resizes it to ",
        w2, "x", h2, ", a grid of ", gh, "x", gw, " patches (h x w), but each grid side must stay below ",
        cfg.max_grid_side, " (the vision tower's position table; the reference raises 'Exceed pos emb'). "
        "Supported: a long side of at most ", max_side_patches * p, " px after resizing, i.e. an aspect ratio "
        "up to about ", std::floor(max_aspect * 10) / 10, ":1 for large images. Crop or pad the image, or "
        "split it into tiles."));
  }
  plan.width1 = static_cast<int>(w1);
  plan.height1 = static_cast<int>(h1);
  plan.width2 = static_cast<int>(w2);
  plan.height2 = static_cast<int>(h2);
  plan.grid_h = static_cast<int>(gh);
  plan.grid_w = static_cast<int>(gw);
  return plan;
}

std::array<float, 256> normalize_table(float mean, float std) {
  std::array<float, 256> lut{};
  for (int p = 0; p < 256; ++p) {
    // torchvision to_tensor then normalize, in float32 and in this order (spec §1.5).
    const float v = static_cast<float>(p) / 255.0f;
    lut[p] = (v - mean) / std;
  }
  return lut;
}

void normalize_and_patchify(const ImageU8& img, int patch, const PreprocessConfig& cfg, float* out) {
  check_config(cfg);
  LA_CHECK(patch > 0 && img.width % patch == 0 && img.height % patch == 0, InvalidArgument,
           "image of ", img.width, "x", img.height, " is not a whole number of ", patch, "px patches");
  std::array<float, 256> lut[3];
  for (int c = 0; c < 3; ++c) lut[c] = normalize_table(cfg.mean[c], cfg.std[c]);
  const int gh = img.height / patch, gw = img.width / patch;
  const size_t row_bytes = static_cast<size_t>(img.width) * 3;
  const size_t patch_elems = 3 * static_cast<size_t>(patch) * patch;
  parallel_for(gh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int c = 0; c < gw; ++c) {
        float* dst = out + (static_cast<size_t>(r) * gw + c) * patch_elems;
        for (int ch = 0; ch < 3; ++ch) {
          const float* t = lut[ch].data();
          for (int ky = 0; ky < patch; ++ky) {
            const uint8_t* px = img.rgb.data() + (static_cast<size_t>(r) * patch + ky) * row_bytes +
                                static_cast<size_t>(c) * patch * 3 + ch;
            for (int kx = 0; kx < patch; ++kx) *dst++ = t[px[3 * kx]];
          }
        }
      }
    }
  });
}

PixelValues preprocess_image(const ImageU8& rgb, const PreprocessConfig& cfg) {
  // Planning first rejects empty and elongated images before any pixel work.
  const ResizePlan plan = plan_resize(rgb.width, rgb.height, cfg);
  LA_CHECK(rgb.rgb.size() == static_cast<size_t>(rgb.width) * rgb.height * 3, InvalidArgument, "ImageU8 holds ",
           rgb.rgb.size(), " bytes but ", rgb.width, "x", rgb.height, " RGB needs ",
           static_cast<size_t>(rgb.width) * rgb.height * 3);
  PixelValues pv;
  pv.grid_h = plan.grid_h;
  pv.grid_w = plan.grid_w;
  // Step B resamples the uint8 result of step A, as the reference does with two PIL resizes.
  if (plan.width1 != plan.width0 || plan.height1 != plan.height0) {
    pv.resized = resize_bicubic_pil(rgb, plan.width1, plan.height1, cfg.pass_order);
    if (plan.width2 != plan.width1 || plan.height2 != plan.height1)
      pv.resized = resize_bicubic_pil(pv.resized, plan.width2, plan.height2, cfg.pass_order);
  } else {
    pv.resized = resize_bicubic_pil(rgb, plan.width2, plan.height2, cfg.pass_order);
  }
  const int patch = cfg.patch_size;
  pv.data.resize(static_cast<size_t>(plan.grid_h) * plan.grid_w * 3 * patch * patch);
  normalize_and_patchify(pv.resized, patch, cfg, pv.data.data());
  return pv;
}

}  // namespace la

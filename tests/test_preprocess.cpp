// Tests for image preprocessing (Pillow-exact resize, resize rule, normalisation, patchify), the
// test PNG reader and JPEG decoding; goldens come from the official processor (fixtures/images).
#include <gtest/gtest.h>
#include <turbojpeg.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/jpeg.h"
#include "vision/preprocess.h"
#include "png_util.h"
#include "test_util.h"

namespace la {
namespace {

// Pillow-verified PNGs (7x6, rows cycling through filters None/Sub/Up/Average/Paeth) for grey,
// grey+alpha, RGB and RGBA; pixel (x, y, c) = (37x + 91y + 53c + 7xy) mod 256.
const uint8_t kFilterPng1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x08, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x65, 0xdb,
    0xaa, 0x00, 0x00, 0x00, 0x34, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x50, 0xf5, 0xca,
    0x9f, 0xb2, 0xf3, 0x1e, 0x63, 0xb4, 0x0e, 0x18, 0x30, 0x45, 0x27, 0x65, 0x16, 0x94, 0xd7, 0xb5,
    0x32, 0x6f, 0x3b, 0x17, 0x14, 0x1a, 0x19, 0xf3, 0x80, 0x25, 0xda, 0x11, 0x08, 0xea, 0x1c, 0x19,
    0x8e, 0xf3, 0x87, 0xcf, 0x7f, 0xae, 0x5f, 0x0e, 0x00, 0x7c, 0x43, 0x10, 0xbe, 0xd0, 0xea, 0x59,
    0xf3, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};
const uint8_t kFilterPng2[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x08, 0x04, 0x00, 0x00, 0x00, 0xa5, 0x07, 0x4c,
    0xfd, 0x00, 0x00, 0x00, 0x55, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x30, 0x55, 0x8d,
    0xf2, 0xaa, 0xcf, 0x5f, 0x32, 0xe5, 0xe4, 0xce, 0x77, 0xf7, 0x84, 0x19, 0xa3, 0x27, 0xe8, 0x20,
    0x01, 0xa6, 0xe8, 0xe8, 0xa4, 0xa4, 0xcc, 0xcc, 0x82, 0x82, 0xf2, 0xf2, 0xba, 0xba, 0xd6, 0x56,
    0xe6, 0x6d, 0x17, 0xcf, 0xf9, 0x05, 0x05, 0x85, 0x86, 0x46, 0x46, 0xc6, 0xdc, 0x79, 0x90, 0xc0,
    0x12, 0x1d, 0xed, 0x08, 0x01, 0xe5, 0x75, 0x40, 0x82, 0xe1, 0xf8, 0x1f, 0x7e, 0x97, 0xf0, 0x9e,
    0xf9, 0x57, 0x9e, 0xcb, 0xe8, 0xa7, 0x94, 0xaf, 0x01, 0x00, 0xbf, 0x05, 0x22, 0x20, 0x84, 0x1e,
    0x94, 0x95, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};
const uint8_t kFilterPng3[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x08, 0x02, 0x00, 0x00, 0x00, 0x80, 0x6c, 0x13,
    0x21, 0x00, 0x00, 0x00, 0x76, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x30, 0xcd, 0x52,
    0x8d, 0xea, 0xf7, 0xaa, 0xdf, 0x92, 0xbf, 0xe4, 0xe6, 0x94, 0x93, 0xff, 0x76, 0xbe, 0x53, 0xbe,
    0x27, 0xec, 0xc1, 0x18, 0x3d, 0xe1, 0xa8, 0x0e, 0x06, 0x60, 0x8a, 0x8e, 0x8e, 0x4e, 0x4a, 0x4a,
    0xca, 0xcc, 0xcc, 0x2c, 0x28, 0x28, 0x28, 0x2f, 0x2f, 0xaf, 0xab, 0xab, 0x6b, 0x6d, 0x6d, 0x65,
    0xde, 0x76, 0x31, 0xfb, 0x9c, 0x9f, 0x5f, 0x50, 0x50, 0x50, 0x68, 0x68, 0x68, 0x64, 0xe4, 0xcd,
    0x98, 0x3b, 0x31, 0x0f, 0x12, 0x12, 0x58, 0x80, 0x6a, 0x1d, 0xa1, 0xa0, 0xc0, 0xb1, 0xdc, 0xb1,
    0x0e, 0xcc, 0x62, 0x38, 0xfe, 0xc7, 0x90, 0xdf, 0xa5, 0x32, 0xbc, 0xe7, 0xe0, 0xfc, 0x2b, 0x9c,
    0xcf, 0x65, 0x02, 0xf5, 0x53, 0x66, 0x96, 0xaf, 0x79, 0x08, 0x00, 0xf1, 0xdd, 0x33, 0x30, 0xc3,
    0x58, 0xd0, 0xba, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};
const uint8_t kFilterPng4[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x06, 0x08, 0x06, 0x00, 0x00, 0x00, 0x0f, 0x0e, 0x84,
    0x76, 0x00, 0x00, 0x00, 0x8e, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x60, 0x30, 0xcd, 0x9a,
    0xaf, 0x1a, 0xd5, 0x7f, 0xc4, 0xab, 0x7e, 0xcb, 0xcb, 0xfc, 0x25, 0x37, 0xf9, 0xa6, 0x9c, 0xfc,
    0x67, 0xbc, 0xf3, 0x9d, 0x72, 0xc4, 0x3d, 0x61, 0x8f, 0x5a, 0xc6, 0xe8, 0x09, 0x47, 0x7f, 0xe9,
    0xe0, 0x00, 0x4c, 0xd1, 0x40, 0x90, 0x04, 0x04, 0x99, 0x40, 0x50, 0x00, 0x04, 0xe5, 0x40, 0x50,
    0x07, 0x04, 0xad, 0x40, 0xc0, 0xbc, 0xed, 0x62, 0x76, 0xdb, 0x39, 0x3f, 0x3f, 0xbf, 0x20, 0x20,
    0x08, 0x0d, 0x0d, 0xbd, 0x1a, 0x19, 0x79, 0x33, 0x32, 0xe6, 0x4e, 0x4c, 0xcc, 0x83, 0x84, 0x84,
    0x04, 0x16, 0x90, 0x4e, 0x47, 0x08, 0xc8, 0x74, 0x74, 0x2c, 0x70, 0x74, 0x2c, 0x77, 0x74, 0xac,
    0x83, 0xf0, 0x5b, 0x19, 0x8e, 0xff, 0x31, 0x4c, 0xe3, 0x77, 0xa9, 0x5c, 0x17, 0xde, 0x73, 0xf0,
    0xdb, 0xfc, 0x2b, 0x9c, 0x76, 0xcf, 0x65, 0x02, 0xdb, 0xf4, 0x53, 0x66, 0x9e, 0x2b, 0x5f, 0xf3,
    0x50, 0x0c, 0x00, 0xf2, 0xd3, 0x44, 0xb3, 0xc5, 0xa9, 0x81, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

void write_bytes(const std::string& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  ASSERT_TRUE(out.good()) << path;
}

ImageU8 random_image(int w, int h, uint32_t seed, int smooth = 0) {
  std::mt19937 rng(seed);
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  if (smooth == 0) {
    for (auto& v : img.rgb) v = static_cast<uint8_t>(rng() & 255);
  } else {
    // Gradients plus mild noise: closer to photos, so JPEG round trips stay close.
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c)
          img.rgb[(static_cast<size_t>(y) * w + x) * 3 + c] =
              static_cast<uint8_t>(x * (c + 1) * 60 / w + y * 60 / h + rng() % 9);
  }
  return img;
}

// Straightforward Pillow BICUBIC (full-height horizontal pass, no blocking), written from the spec
// independently of the library, to check the optimised code paths.
std::vector<uint8_t> naive_pass(const std::vector<uint8_t>& src, int w, int h, int out_len, bool horizontal) {
  const int n_in = horizontal ? w : h;
  const double scale = static_cast<double>(n_in) / out_len;
  const double fs = std::max(scale, 1.0), support = 2.0 * fs;
  const int ow = horizontal ? out_len : w, oh = horizontal ? h : out_len;
  std::vector<uint8_t> dst(static_cast<size_t>(ow) * oh * 3);
  for (int o = 0; o < out_len; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(center - support + 0.5));
    const int hi = std::min(n_in, static_cast<int>(center + support + 0.5));
    std::vector<double> wt;
    double sum = 0;
    for (int x = lo; x < hi; ++x) {
      double t = std::fabs((x - center + 0.5) * (1.0 / fs));
      const double a = -0.5;
      double k = t < 1 ? ((a + 2) * t - (a + 3)) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * a : 0;
      wt.push_back(k);
      sum += k;
    }
    std::vector<int> q;
    for (double k : wt) {
      if (sum != 0) k /= sum;
      q.push_back(static_cast<int>(k < 0 ? k * 4194304.0 - 0.5 : k * 4194304.0 + 0.5));
    }
    const int lines = horizontal ? h : w;
    for (int l = 0; l < lines; ++l)
      for (int c = 0; c < 3; ++c) {
        int acc = 1 << 21;
        for (int i = 0; i < hi - lo; ++i) {
          const int x = lo + i;
          const size_t idx = horizontal ? (static_cast<size_t>(l) * w + x) * 3 + c : (static_cast<size_t>(x) * w + l) * 3 + c;
          acc += src[idx] * q[i];
        }
        const int v = std::min(255, std::max(0, acc >> 22));
        const size_t out_idx = horizontal ? (static_cast<size_t>(l) * ow + o) * 3 + c : (static_cast<size_t>(o) * ow + l) * 3 + c;
        dst[out_idx] = static_cast<uint8_t>(v);
      }
  }
  return dst;
}

// Pass order as observed from Pillow 13.0 (vertical first when the height loses more than twice as
// many pixels as the width) and as written in Pillow 12.2/12.3's Image.resize (H > 100 W).
ImageU8 naive_resize(const ImageU8& src, int w, int h, bool pillow12 = false) {
  const int W = src.width, H = src.height;
  const bool v_first = h < H && (pillow12 ? H > 100 * W : (H - h) > 2 * (W - w));
  std::vector<uint8_t> cur = src.rgb;
  if (v_first && w != W) {
    if (h != H) cur = naive_pass(cur, W, H, h, false);
    return ImageU8{w, h, naive_pass(cur, W, h, w, true)};
  }
  int cw = W;
  if (w != W) {
    cur = naive_pass(cur, cw, H, w, true);
    cw = w;
  }
  if (h != H) cur = naive_pass(cur, cw, H, h, false);
  return ImageU8{w, h, cur};
}

template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------- PNG

TEST(PngReader, AllFilterTypesAndColourTypes) {
  const std::string dir = test::temp_dir("png_filters");
  const uint8_t* files[] = {kFilterPng1, kFilterPng2, kFilterPng3, kFilterPng4};
  const size_t sizes[] = {sizeof(kFilterPng1), sizeof(kFilterPng2), sizeof(kFilterPng3), sizeof(kFilterPng4)};
  for (int ch = 1; ch <= 4; ++ch) {
    const std::string path = dir + "/f" + std::to_string(ch) + ".png";
    write_bytes(path, files[ch - 1], sizes[ch - 1]);
    const test::PngImage img = test::read_png(path);
    ASSERT_EQ(img.width, 7);
    ASSERT_EQ(img.height, 6);
    ASSERT_EQ(img.channels, ch);
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 7; ++x)
        for (int c = 0; c < ch; ++c)
          ASSERT_EQ(img.pixels[(y * 7 + x) * ch + c], (x * 37 + y * 91 + c * 53 + x * y * 7) & 255)
              << "channels " << ch << " at (" << x << "," << y << "," << c << ")";
  }
}

TEST(PngReader, RejectsCorruptFiles) {
  const std::string dir = test::temp_dir("png_corrupt");
  std::vector<uint8_t> bad(kFilterPng3, kFilterPng3 + sizeof(kFilterPng3));
  bad[40] ^= 0x55;  // inside IDAT: the CRC check must notice
  write_bytes(dir + "/crc.png", bad.data(), bad.size());
  EXPECT_THROW(test::read_png(dir + "/crc.png"), std::runtime_error);
  write_bytes(dir + "/short.png", kFilterPng3, 60);
  EXPECT_THROW(test::read_png(dir + "/short.png"), std::runtime_error);
  EXPECT_THROW(test::read_png(dir + "/missing.png"), std::runtime_error);
}

// ------------------------------------------------------------------------------------- resize rule

struct PlanCase {
  int w, h, w1, h1, w2, h2, gh, gw;
};

TEST(PreprocessPlan, WorkedExamplesOfSpec) {
  // spec-vision-and-io §1.7
  const PlanCase cases[] = {
      {640, 360, 640, 360, 644, 364, 26, 46},       {1024, 1024, 1024, 1024, 1036, 1036, 74, 74},
      {4000, 3000, 2591, 1943, 2604, 1960, 140, 186}, {448, 448, 448, 448, 448, 448, 32, 32},
      {1920, 1080, 1920, 1080, 1932, 1092, 78, 138}, {3840, 2160, 2990, 1682, 2996, 1708, 122, 214},
      {2240, 2240, 2240, 2240, 2240, 2240, 160, 160}, {2241, 2241, 2241, 2241, 2268, 2268, 162, 162},
      {10, 10, 10, 10, 28, 28, 2, 2},               {2600, 2000, 2566, 1974, 2576, 1988, 142, 184},
      {1, 1, 1, 1, 28, 28, 2, 2},
  };
  const PreprocessConfig cfg;
  for (const PlanCase& c : cases) {
    const ResizePlan p = plan_resize(c.w, c.h, cfg);
    EXPECT_EQ(p.width0, c.w);
    EXPECT_EQ(p.height0, c.h);
    EXPECT_EQ(p.width1, c.w1) << c.w << "x" << c.h;
    EXPECT_EQ(p.height1, c.h1) << c.w << "x" << c.h;
    EXPECT_EQ(p.width2, c.w2) << c.w << "x" << c.h;
    EXPECT_EQ(p.height2, c.h2) << c.w << "x" << c.h;
    EXPECT_EQ(p.grid_h, c.gh) << c.w << "x" << c.h;
    EXPECT_EQ(p.grid_w, c.gw) << c.w << "x" << c.h;
  }
  const std::string msg = error_message([&] { plan_resize(10000, 200, cfg); });
  EXPECT_NE(msg.find("too elongated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("716"), std::string::npos) << msg;
  EXPECT_THROW(plan_resize(10000, 200, cfg), InvalidArgument);
}

TEST(PreprocessPlan, RejectsBadSizesAndConfig) {
  PreprocessConfig cfg;
  EXPECT_THROW(plan_resize(0, 10, cfg), InvalidArgument);
  EXPECT_THROW(plan_resize(10, -1, cfg), InvalidArgument);
  EXPECT_THROW(plan_resize(50000, 20, cfg), InvalidArgument);
  EXPECT_THROW(plan_resize(20, 50000, cfg), InvalidArgument);
  // The widest image that still fits: 510 patches of 14 px.
  EXPECT_EQ(plan_resize(7140, 28, cfg).grid_w, 510);
  EXPECT_THROW(plan_resize(7141, 28, cfg), InvalidArgument);
  cfg.patch_size = 0;
  EXPECT_THROW(plan_resize(100, 100, cfg), InvalidArgument);
}

// ------------------------------------------------------------------------------------ normalisation

TEST(PreprocessNormalize, SpotValuesOfSpec) {
  const auto lut = normalize_table(0.5f, 0.5f);
  // spec §1.5: float32 values after to_tensor + normalize.
  EXPECT_EQ(lut[0], -1.0f);
  EXPECT_EQ(lut[1], -0.9921568632125854f);
  EXPECT_EQ(lut[64], -0.498039186000824f);
  EXPECT_EQ(lut[127], -0.003921568393707275f);
  EXPECT_EQ(lut[128], 0.003921627998352051f);
  EXPECT_EQ(lut[200], 0.5686274766921997f);
  EXPECT_EQ(lut[255], 1.0f);
  // The op order matters: half the values differ from the correctly rounded (2p - 255) / 255.
  int differ = 0;
  for (int p = 0; p < 256; ++p) differ += lut[p] != static_cast<float>((2.0 * p - 255.0) / 255.0);
  EXPECT_EQ(differ, 128);
}

TEST(PreprocessNormalize, PatchLayout) {
  const ImageU8 img = random_image(56, 28, 7);
  PreprocessConfig cfg;
  std::vector<float> out(2 * 4 * 3 * 14 * 14);
  normalize_and_patchify(img, 14, cfg, out.data());
  const auto lut = normalize_table(0.5f, 0.5f);
  for (int n = 0; n < 8; ++n)
    for (int ch = 0; ch < 3; ++ch)
      for (int ky = 0; ky < 14; ++ky)
        for (int kx = 0; kx < 14; ++kx) {
          const int r = n / 4, c = n % 4;
          const uint8_t p = img.rgb[((14 * r + ky) * 56 + 14 * c + kx) * 3 + ch];
          ASSERT_EQ(out[((n * 3 + ch) * 14 + ky) * 14 + kx], lut[p]);
        }
}

// ----------------------------------------------------------------------------------------- to_rgb

TEST(PreprocessToRgb, ChannelCountsAndStrides) {
  // 2x3 image, stored column-major with channel-last (stride_h = C, stride_w = C*H).
  const int h = 2, w = 3;
  std::vector<uint8_t> buf(h * w * 4);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 41 + 3);
  for (int ch = 1; ch <= 4; ++ch) {
    const ImageU8 out = to_rgb(buf.data(), h, w, ch, ch, ch * h, 1);
    ASSERT_EQ(out.width, w);
    ASSERT_EQ(out.height, h);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const uint8_t* p = buf.data() + y * ch + x * ch * h;
        const uint8_t* o = out.rgb.data() + (y * w + x) * 3;
        for (int c = 0; c < 3; ++c) {
          int expect = 0;
          if (ch <= 2) expect = p[0];
          if (ch == 3) expect = p[c];
          if (ch == 4) {
            // Exact rounding of (255*(255-a) + c*a) / 255.
            const int num = 255 * (255 - p[3]) + p[c] * p[3];
            expect = (2 * num + 255) / 510;
          }
          ASSERT_EQ(o[c], expect) << "channels " << ch << " pixel " << x << "," << y;
        }
      }
  }
  // Negative strides (a vertically flipped view).
  std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6};
  const ImageU8 flipped = to_rgb(rgb.data() + 3, 2, 1, 3, -3, 3, 1);
  EXPECT_EQ(flipped.rgb, (std::vector<uint8_t>{4, 5, 6, 1, 2, 3}));
}

TEST(PreprocessToRgb, CompositeMatchesDiv255Everywhere) {
  std::vector<uint8_t> px(4 * 256 * 256);
  for (int a = 0; a < 256; ++a)
    for (int c = 0; c < 256; ++c) {
      uint8_t* p = &px[(a * 256 + c) * 4];
      p[0] = p[1] = p[2] = static_cast<uint8_t>(c);
      p[3] = static_cast<uint8_t>(a);
    }
  const ImageU8 out = to_rgb(px.data(), 256, 256, 4, 256 * 4, 4, 1);
  for (int a = 0; a < 256; ++a)
    for (int c = 0; c < 256; ++c) {
      const int v = 255 * (255 - a) + c * a;
      ASSERT_EQ(out.rgb[(a * 256 + c) * 3], static_cast<int>(std::lround(v / 255.0))) << a << "," << c;
    }
}

TEST(PreprocessToRgb, RejectsEmptyAndBadChannels) {
  uint8_t px[16] = {};
  EXPECT_THROW(to_rgb(px, 0, 4, 3, 12, 3, 1), InvalidArgument);
  EXPECT_THROW(to_rgb(px, 4, 0, 3, 0, 3, 1), InvalidArgument);
  EXPECT_THROW(to_rgb(px, 1, 1, 5, 5, 5, 1), InvalidArgument);
  EXPECT_THROW(to_rgb(px, 1, 1, 0, 5, 5, 1), InvalidArgument);
  const std::string msg = error_message([&] { to_rgb(px, 1, 1, 5, 5, 5, 1); });
  EXPECT_NE(msg.find("5 channels"), std::string::npos) << msg;
}

// ------------------------------------------------------------------------------------------ resize

TEST(PreprocessResize, MatchesNaiveReference) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 80; ++i) {
    const int w = 1 + rng() % 90, h = 1 + rng() % 90;
    const int ow = 1 + rng() % 120, oh = 1 + rng() % 120;
    const ImageU8 src = random_image(w, h, 100 + i, i % 2);
    const ImageU8 out = resize_bicubic_pil(src, ow, oh);
    const ImageU8 ref = naive_resize(src, ow, oh);
    ASSERT_EQ(out.width, ow);
    ASSERT_EQ(out.height, oh);
    ASSERT_EQ(out.rgb, ref.rgb) << w << "x" << h << " -> " << ow << "x" << oh;
    ASSERT_EQ(resize_bicubic_pil(src, ow, oh, ResizePassOrder::Pillow12).rgb, naive_resize(src, ow, oh, true).rgb)
        << w << "x" << h << " -> " << ow << "x" << oh << " (Pillow 12 order)";
  }
  // Very tall images: Pillow 12 also runs the vertical pass first.
  const ImageU8 tall = random_image(3, 400, 77);
  EXPECT_TRUE(vertical_pass_first(3, 400, 2, 100, ResizePassOrder::Pillow12));
  EXPECT_EQ(resize_bicubic_pil(tall, 2, 100, ResizePassOrder::Pillow12).rgb, naive_resize(tall, 2, 100, true).rgb);
}

TEST(PreprocessResize, PassOrderRules) {
  // Pillow 13: vertical first iff H - h > 2 * (W - w) and the height shrinks; ties go horizontal.
  EXPECT_FALSE(vertical_pass_first(60, 60, 35, 10, ResizePassOrder::Pillow13));
  EXPECT_TRUE(vertical_pass_first(60, 60, 36, 10, ResizePassOrder::Pillow13));
  EXPECT_TRUE(vertical_pass_first(60, 60, 90, 59, ResizePassOrder::Pillow13));
  EXPECT_FALSE(vertical_pass_first(60, 60, 200, 61, ResizePassOrder::Pillow13));
  EXPECT_FALSE(vertical_pass_first(60, 60, 36, 10, ResizePassOrder::Pillow12));
  EXPECT_TRUE(vertical_pass_first(10, 1001, 9, 1000, ResizePassOrder::Pillow12));
  EXPECT_FALSE(vertical_pass_first(10, 1000, 9, 999, ResizePassOrder::Pillow12));
}

TEST(PreprocessResize, SimdEqualsScalarTwin) {
  std::mt19937 rng(99);
  for (int i = 0; i < 24; ++i) {
    const int w = 1 + rng() % 700, h = 1 + rng() % 300;
    const int ow = 1 + rng() % 700, oh = 1 + rng() % 300;
    const ImageU8 src = random_image(w, h, 500 + i, i % 3 == 0);
    const ImageU8 simd = resize_bicubic_pil(src, ow, oh);
    const Isa previous = set_isa_cap(Isa::Scalar);
    const ImageU8 scalar = resize_bicubic_pil(src, ow, oh);
    set_isa_cap(previous);
    ASSERT_EQ(simd.rgb, scalar.rgb) << w << "x" << h << " -> " << ow << "x" << oh;
  }
}

TEST(PreprocessResize, SameSizeCopiesAndOneAxisChanges) {
  const ImageU8 src = random_image(37, 23, 5);
  EXPECT_EQ(resize_bicubic_pil(src, 37, 23).rgb, src.rgb);
  EXPECT_EQ(resize_bicubic_pil(src, 50, 23).rgb, naive_resize(src, 50, 23).rgb);
  EXPECT_EQ(resize_bicubic_pil(src, 37, 11).rgb, naive_resize(src, 37, 11).rgb);
  // A flat image stays flat (the kernel is renormalised at the borders, never edge-padded).
  ImageU8 flat{40, 30, std::vector<uint8_t>(40 * 30 * 3, 77)};
  const ImageU8 up = resize_bicubic_pil(flat, 97, 13);
  for (uint8_t v : up.rgb) ASSERT_EQ(v, 77);
  EXPECT_THROW(resize_bicubic_pil(src, 0, 5), InvalidArgument);
  EXPECT_THROW(resize_bicubic_pil(ImageU8{}, 5, 5), InvalidArgument);
}

TEST(PreprocessResize, ThreadedEqualsSerial) {
  const ImageU8 src = random_image(613, 419, 9);
  const ImageU8 serial = resize_bicubic_pil(src, 401, 777);
  ThreadPool pool(4);
  PoolScope scope(&pool);
  EXPECT_EQ(resize_bicubic_pil(src, 401, 777).rgb, serial.rgb);
  const PixelValues a = preprocess_image(src, PreprocessConfig{});
  EXPECT_EQ(a.grid_h, 30);
  EXPECT_EQ(a.grid_w, 44);
}

// ----------------------------------------------------------------------------- official fixtures

TEST(PreprocessFixtures, MatchOfficialProcessorExactly) {
  const char* names[] = {"img0_640x360", "img1_333x517", "img2_1024x1024", "img3_28x28",
                         "img4_2600x2000_processor_only"};
  for (const char* name : names) {
    SCOPED_TRACE(name);
    const std::string base = test::fixture(std::string("images/") + name);
    const ImageU8 img = test::read_png_rgb(base + ".png");
    const ImageU8 resized = test::read_png_rgb(base + "__resized.png");
    auto npz = test::read_npz(base + "__processor.npz");

    const auto t0 = std::chrono::steady_clock::now();
    const PixelValues pv = preprocess_image(img, PreprocessConfig{});
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[          ] %s %dx%d -> %dx%d: %.1f ms\n", name, img.width, img.height, pv.resized.width,
                pv.resized.height, ms);

    const std::vector<int32_t> grid = npz.at("image_grid_hws").as_int32();
    ASSERT_EQ(grid.size(), 2u);
    EXPECT_EQ(pv.grid_h, grid[0]);
    EXPECT_EQ(pv.grid_w, grid[1]);
    ASSERT_EQ(pv.resized.width, resized.width);
    ASSERT_EQ(pv.resized.height, resized.height);
    ASSERT_TRUE(pv.resized.rgb == resized.rgb) << "resized image differs from the official one";

    const size_t patch = 3 * 14 * 14;
    const size_t n = static_cast<size_t>(pv.grid_h) * pv.grid_w;
    ASSERT_EQ(pv.data.size(), n * patch);
    const std::vector<float> first8 = npz.at("pixel_values_first8").as_float();
    const std::vector<float> last8 = npz.at("pixel_values_last8").as_float();
    const size_t n8 = std::min<size_t>(8, n);  // the processor stores fewer when there are fewer patches
    ASSERT_EQ(first8.size(), n8 * patch);
    ASSERT_EQ(last8.size(), n8 * patch);
    for (size_t i = 0; i < first8.size(); ++i) ASSERT_EQ(pv.data[i], first8[i]) << "first8 element " << i;
    for (size_t i = 0; i < last8.size(); ++i)
      ASSERT_EQ(pv.data[(n - n8) * patch + i], last8[i]) << "last8 element " << i;
    if (npz.count("pixel_values")) {
      const std::vector<float> full = npz.at("pixel_values").as_float();
      ASSERT_EQ(full.size(), pv.data.size());
      for (size_t i = 0; i < full.size(); ++i) ASSERT_EQ(pv.data[i], full[i]) << "element " << i;
    }
  }
}

TEST(PreprocessImage, TinyAndLargeImages) {
  const PixelValues one = preprocess_image(random_image(1, 1, 3), PreprocessConfig{});
  EXPECT_EQ(one.grid_h, 2);
  EXPECT_EQ(one.grid_w, 2);
  EXPECT_EQ(one.resized.width, 28);
  for (size_t i = 3; i < one.resized.rgb.size(); ++i) ASSERT_EQ(one.resized.rgb[i], one.resized.rgb[i % 3]);

  const ImageU8 big = random_image(4000, 3000, 11, 1);
  const auto t0 = std::chrono::steady_clock::now();
  const PixelValues pv = preprocess_image(big, PreprocessConfig{});
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[          ] 4000x3000 preprocess on one thread: %.1f ms\n", ms);
  EXPECT_EQ(pv.grid_h, 140);
  EXPECT_EQ(pv.grid_w, 186);
  EXPECT_EQ(pv.data.size(), 140u * 186 * 588);

  ImageU8 long_strip{50000, 20, std::vector<uint8_t>(50000 * 20 * 3, 9)};
  const std::string msg = error_message([&] { preprocess_image(long_strip, PreprocessConfig{}); });
  EXPECT_NE(msg.find("too elongated"), std::string::npos) << msg;
  EXPECT_THROW(preprocess_image(long_strip, PreprocessConfig{}), InvalidArgument);
  EXPECT_THROW(preprocess_image(ImageU8{}, PreprocessConfig{}), InvalidArgument);
}

// -------------------------------------------------------------------------------------------- JPEG

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& px, int w, int h, int pixel_format, int subsamp,
                                 int quality) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int ch = tjPixelSize[pixel_format];
  const int rc = tjCompress2(tj, px.data(), w, w * ch, h, pixel_format, &buf, &size, subsamp, quality, 0);
  std::vector<uint8_t> out;
  if (rc == 0) out.assign(buf, buf + size);
  tjFree(buf);
  tjDestroy(tj);
  return out;
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int{a[i]} - int{b[i]});
  return s / static_cast<double>(a.size());
}

TEST(JpegDecode, RoundTripsColourGreyAndCmyk) {
  const ImageU8 img = random_image(97, 61, 4, 1);
  for (int subsamp : {TJSAMP_444, TJSAMP_422, TJSAMP_420}) {
    const auto jpg = encode_jpeg(img.rgb, 97, 61, TJPF_RGB, subsamp, 95);
    ASSERT_FALSE(jpg.empty());
    ASSERT_TRUE(looks_like_jpeg(jpg.data(), jpg.size()));
    const ImageU8 dec = decode_jpeg(jpg.data(), jpg.size());
    ASSERT_EQ(dec.width, 97);
    ASSERT_EQ(dec.height, 61);
    EXPECT_LT(mean_abs_diff(dec.rgb, img.rgb), 4.0) << "subsampling " << subsamp;
  }
  std::vector<uint8_t> grey(97 * 61);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = img.rgb[i * 3];
  const auto gjpg = encode_jpeg(grey, 97, 61, TJPF_GRAY, TJSAMP_GRAY, 95);
  const ImageU8 g = decode_jpeg(gjpg.data(), gjpg.size());
  for (size_t i = 0; i < grey.size(); ++i) {
    ASSERT_EQ(g.rgb[3 * i], g.rgb[3 * i + 1]);
    ASSERT_EQ(g.rgb[3 * i], g.rgb[3 * i + 2]);
  }
  // CMYK (stored Adobe-inverted, as Photoshop and Pillow write it): white paper, black ink.
  std::vector<uint8_t> cmyk(16 * 16 * 4, 255);
  for (int i = 0; i < 16 * 8; ++i) cmyk[i * 4 + 3] = 0;  // top half: full K
  const auto cjpg = encode_jpeg(cmyk, 16, 16, TJPF_CMYK, TJSAMP_444, 100);
  const ImageU8 c = decode_jpeg(cjpg.data(), cjpg.size());
  EXPECT_LE(c.rgb[0], 3);
  EXPECT_GE(c.rgb.back(), 252);
}

TEST(JpegDecode, BadInputsRaiseNamedErrors) {
  const std::string dir = test::temp_dir("jpeg_bad");
  EXPECT_THROW(decode_jpeg_file(dir + "/missing.jpg"), FileNotFound);

  const ImageU8 img = random_image(64, 48, 2, 1);
  const auto jpg = encode_jpeg(img.rgb, 64, 48, TJPF_RGB, TJSAMP_420, 90);
  const std::string truncated = dir + "/truncated.jpg";
  write_bytes(truncated, jpg.data(), jpg.size() / 2);
  const std::string msg = error_message([&] { decode_jpeg_file(truncated); });
  EXPECT_NE(msg.find(truncated), std::string::npos) << msg;
  EXPECT_THROW(decode_jpeg_file(truncated), InvalidArgument);

  const std::string header_only = dir + "/header.jpg";
  write_bytes(header_only, jpg.data(), 20);
  EXPECT_THROW(decode_jpeg_file(header_only), InvalidArgument);

  const std::string png = dir + "/not.jpg";
  write_bytes(png, kFilterPng3, sizeof(kFilterPng3));
  EXPECT_THROW(decode_jpeg_file(png), InvalidArgument);
  const std::string empty = dir + "/empty.jpg";
  write_bytes(empty, "", 0);
  EXPECT_THROW(decode_jpeg_file(empty), InvalidArgument);

  // Markers sprinkled through the scan: libjpeg either recovers (Pillow accepts such files too) or
  // fails; a failure must be an InvalidArgument that names the source.
  std::vector<uint8_t> garbage = jpg;
  for (size_t i = 200; i + 2 < garbage.size(); i += 7) garbage[i] = 0xFF;
  try {
    decode_jpeg(garbage.data(), garbage.size(), "garbage");
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("garbage"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace la

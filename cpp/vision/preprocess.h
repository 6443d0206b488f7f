// Image preprocessing exactly as the official processor: RGB conversion, Pillow-identical bicubic
// resizes (token-limit downscale, snap to multiples of 28), normalisation and patch layout.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/image.h"
#include "io/config.h"

namespace la {

// Converts an H×W×C uint8 image with arbitrary strides (in bytes) to RGB: C=3 copied, C=1 grey
// replicated (PIL "L"->"RGB"), C=4 alpha-composited onto white (the processor's RGBA rule),
// C=2 grey+alpha with alpha dropped (PIL "LA"->"RGB"). Other C, or empty images, raise InvalidArgument.
ImageU8 to_rgb(const uint8_t* data, int height, int width, int channels, int64_t stride_h,
               int64_t stride_w, int64_t stride_c);

// Pillow's Image.resize(size, BICUBIC) for RGB uint8, byte for byte (a = -0.5, antialiased by
// support scaling, 22-bit fixed point, two 1-D passes with a uint8 intermediate, a pass whose size
// does not change skipped). Runs on current_pool() when one is installed.
ImageU8 resize_bicubic_pil(const ImageU8& src, int out_width, int out_height,
                           ResizePassOrder order = ResizePassOrder::Pillow13);

// True when `order` runs the vertical pass first for this resize (both sides must change).
bool vertical_pass_first(int in_width, int in_height, int out_width, int out_height, ResizePassOrder order);

// The official resize rule for one image.
struct ResizePlan {
  int width0 = 0, height0 = 0;  // original
  int width1 = 0, height1 = 0;  // after the token-limit downscale (== original when not needed)
  int width2 = 0, height2 = 0;  // after snapping to multiples of patch*merge
  int grid_h = 0, grid_w = 0;   // in patches
};
// Throws InvalidArgument for empty images or grids whose side reaches max_grid_side.
ResizePlan plan_resize(int width, int height, const PreprocessConfig& cfg);

// Output of preprocessing one image.
struct PixelValues {
  int grid_h = 0, grid_w = 0;
  // [grid_h*grid_w, 3, patch, patch] float32: patches row-major over the grid, each channel-major.
  std::vector<float> data;
  ImageU8 resized;  // the image after both resizes (what the patches were cut from)
};

// The 256 values ((float(p) / 255) - mean) / std, computed in float32 in the reference's op order
// (to_tensor, then normalize); the order matters for half of the values' last bit.
std::array<float, 256> normalize_table(float mean, float std);

// Normalises an RGB image whose sides are multiples of `patch` and writes it patchified:
// out is [(H/patch)*(W/patch), 3, patch, patch] float32, patches row-major over the grid.
void normalize_and_patchify(const ImageU8& img, int patch, const PreprocessConfig& cfg, float* out);

// plan_resize + both resizes + ((u8/255) - mean)/std + patchify.
PixelValues preprocess_image(const ImageU8& rgb, const PreprocessConfig& cfg);

}  // namespace la

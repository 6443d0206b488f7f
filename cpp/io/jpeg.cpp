// JPEG decoding to RGB with libjpeg-turbo's TurboJPEG API, set up to give the pixels Pillow gives.
#include "io/jpeg.h"

#include <turbojpeg.h>

#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "core/error.h"
#include "io/files.h"

namespace la {
namespace {

// Pillow refuses images above twice Image.MAX_IMAGE_PIXELS (a decompression-bomb guard); refusing
// the same keeps a forged header from asking for tens of gigabytes.
constexpr int64_t kMaxPixels = 2 * int64_t{89478485};

struct TjHandleDeleter {
  void operator()(void* h) const {
    if (h) tjDestroy(h);
  }
};
using TjHandle = std::unique_ptr<void, TjHandleDeleter>;

const char* colorspace_name(int cs) {
  switch (cs) {
    case TJCS_RGB: return "RGB";
    case TJCS_YCbCr: return "YCbCr";
    case TJCS_GRAY: return "grey";
    case TJCS_CMYK: return "CMYK";
    case TJCS_YCCK: return "YCCK";
    default: return "unknown";
  }
}

// Pillow always reads CMYK JPEGs with Adobe's inverted polarity (raw mode "CMYK;I": ink = 255 -
// stored) and converts to RGB with nk = 255 - k, out = clip(nk - MULDIV255(ink, nk)), MULDIV255 being
// its exact integer rounding of ink * nk / 255. Here `cmyk` holds the stored (inverted) values.
void cmyk_to_rgb(const uint8_t* cmyk, size_t n_pixels, uint8_t* rgb) {
  for (size_t i = 0; i < n_pixels; ++i, cmyk += 4, rgb += 3) {
    const int nk = 255 - (255 - cmyk[3]);  // 255 - ink of K
    for (int c = 0; c < 3; ++c) {
      const int t = (255 - cmyk[c]) * nk + 128;
      const int v = nk - ((t + (t >> 8)) >> 8);
      rgb[c] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
  }
}

}  // namespace

bool looks_like_jpeg(const uint8_t* data, size_t size) {
  return data != nullptr && size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

ImageU8 decode_jpeg(const uint8_t* data, size_t size, const std::string& what) {
  LA_CHECK(size > 0 && data != nullptr, InvalidArgument, "JPEG '", what, "' is empty (0 bytes)");
  LA_CHECK(looks_like_jpeg(data, size), InvalidArgument, "'", what,
           "' is not a JPEG (it does not start with the FF D8 FF marker). Decode other formats with "
           "Pillow (np.asarray(Image.open(path).convert('RGB'))) and pass the RGB array instead.");
  LA_CHECK(size <= std::numeric_limits<unsigned long>::max(), InvalidArgument, "JPEG '", what, "' is ", size,
           " bytes, more than TurboJPEG can address on this platform");
  TjHandle tj(tjInitDecompress());
  LA_CHECK(tj != nullptr, RuntimeError, "cannot create a TurboJPEG decompressor: ", tjGetErrorStr2(nullptr));

  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  auto* bytes = const_cast<unsigned char*>(data);  // TurboJPEG 2.x takes non-const input it never writes
  if (tjDecompressHeader3(tj.get(), bytes, static_cast<unsigned long>(size), &width, &height, &subsamp,
                          &colorspace) != 0) {
    throw InvalidArgument(str_cat("cannot read the JPEG header of '", what, "': ", tjGetErrorStr2(tj.get()),
                                  ". The file is corrupt or truncated; re-export it or open it with Pillow "
                                  "to see what is wrong."));
  }
  LA_CHECK(width > 0 && height > 0, InvalidArgument, "JPEG '", what, "' declares an empty image (", width, "x",
           height, ")");
  LA_CHECK(static_cast<int64_t>(width) * height <= kMaxPixels, InvalidArgument, "JPEG '", what, "' is ", width,
           "x", height, " = ", static_cast<int64_t>(width) * height, " pixels, above the ", kMaxPixels,
           "-pixel limit Pillow also enforces against decompression bombs; downscale it first");

  const bool cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  const int pixel_format = cmyk ? TJPF_CMYK : TJPF_RGB;
  const int channels = cmyk ? 4 : 3;
  std::vector<uint8_t> buf(static_cast<size_t>(width) * height * channels);
  // Accurate integer IDCT and fancy (triangle) chroma upsampling: libjpeg's defaults, which Pillow
  // uses. LIMITSCANS bounds the work a malicious progressive file can cause.
  const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
  if (tjDecompress2(tj.get(), bytes, static_cast<unsigned long>(size), buf.data(), width, width * channels,
                    height, pixel_format, flags) != 0) {
    const char* msg = tjGetErrorStr2(tj.get());
    // Pillow ignores libjpeg's warnings (e.g. extraneous bytes) but fails on truncated files, which
    // libjpeg reports only as the "Premature end of JPEG file" warning after padding the image grey.
    const bool fatal = tjGetErrorCode(tj.get()) == TJERR_FATAL;
    const bool truncated = msg != nullptr && std::strstr(msg, "Premature end of JPEG file") != nullptr;
    if (fatal || truncated) {
      throw InvalidArgument(str_cat("cannot decode JPEG '", what, "' (", colorspace_name(colorspace), ", ", width,
                                    "x", height, "): ", msg ? msg : "unknown error",
                                    truncated ? ". The file is truncated; re-download or re-export it."
                                              : ". The file is corrupt or uses an unsupported JPEG variant "
                                                "(e.g. 12-bit or lossless); re-export it as a baseline JPEG."));
    }
  }

  ImageU8 img;
  img.width = width;
  img.height = height;
  if (cmyk) {
    img.rgb.resize(static_cast<size_t>(width) * height * 3);
    cmyk_to_rgb(buf.data(), static_cast<size_t>(width) * height, img.rgb.data());
  } else {
    img.rgb = std::move(buf);
  }
  return img;
}

ImageU8 decode_jpeg_file(const std::string& path) {
  LA_CHECK(file_exists(path), FileNotFound, "JPEG file not found: '", path, "'");
  const std::string bytes = read_file(path);
  return decode_jpeg(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace la

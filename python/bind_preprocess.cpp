// Binding of image preprocessing and JPEG decoding: uint8 numpy arrays of any strides in, numpy out.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "bind.h"
#include "core/error.h"
#include "io/jpeg.h"
#include "vision/preprocess.h"

namespace la::py {
namespace {

namespace pb = pybind11;

// A borrowed view of a caller's uint8 image: the array reference keeps the memory alive while the
// GIL is released; no copy is made on the Python side.
struct ImageView {
  pb::array owner;
  const uint8_t* data = nullptr;
  int height = 0, width = 0, channels = 0;
  int64_t stride_h = 0, stride_w = 0, stride_c = 0;  // bytes, may be negative
};

std::string shape_str(const pb::array& a) {
  std::string s = "(";
  for (pb::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

ImageView image_view(const pb::handle& obj, const char* fn) {
  if (!pb::isinstance<pb::array>(obj)) {
    throw pb::type_error(str_cat(fn, ": image must be a numpy.ndarray of shape (H, W) or (H, W, C) and dtype uint8, "
                                     "got ", std::string(pb::str(pb::type::handle_of(obj).attr("__name__"))),
                                 ". For a PIL image pass np.asarray(img)."));
  }
  ImageView v;
  v.owner = pb::reinterpret_borrow<pb::array>(obj);
  const pb::dtype dt = v.owner.dtype();
  if (dt.kind() != 'u' || dt.itemsize() != 1) {
    const std::string name = pb::str(dt.attr("name"));
    throw InvalidArgument(str_cat(
        fn, ": image dtype is ", name, "; expected uint8 (0..255). Convert a float image in [0, 1] with "
        "(img * 255).clip(0, 255).astype(np.uint8)",
        dt.kind() == 'b' ? ", a bool mask with img.astype(np.uint8) * 255" : "",
        ", an integer image already in 0..255 with img.astype(np.uint8)."));
  }
  const pb::ssize_t nd = v.owner.ndim();
  const bool ok_shape = nd == 2 || (nd == 3 && v.owner.shape(2) >= 1 && v.owner.shape(2) <= 4);
  LA_CHECK(ok_shape, InvalidArgument, fn, ": image has shape ", shape_str(v.owner),
           "; expected (H, W) for grey or (H, W, C) with C = 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)");
  LA_CHECK(v.owner.shape(0) <= INT_MAX && v.owner.shape(1) <= INT_MAX, InvalidArgument, fn, ": image of shape ",
           shape_str(v.owner), " is too large");
  v.data = static_cast<const uint8_t*>(v.owner.data());
  v.height = static_cast<int>(v.owner.shape(0));
  v.width = static_cast<int>(v.owner.shape(1));
  v.channels = nd == 3 ? static_cast<int>(v.owner.shape(2)) : 1;
  v.stride_h = v.owner.strides(0);
  v.stride_w = v.owner.strides(1);
  v.stride_c = nd == 3 ? v.owner.strides(2) : 0;
  LA_CHECK(v.height > 0 && v.width > 0, InvalidArgument, fn, ": image of shape ", shape_str(v.owner),
           " is empty; pass an image with at least one pixel");
  return v;
}

ImageU8 rgb_of(const ImageView& v) {
  return to_rgb(v.data, v.height, v.width, v.channels, v.stride_h, v.stride_w, v.stride_c);
}

pb::array_t<uint8_t> image_to_numpy(ImageU8&& img) {
  const int h = img.height, w = img.width;
  return to_numpy(std::move(img.rgb), {h, w, 3});
}

ResizePassOrder pass_order_of(const std::string& name) {
  if (name == "pillow13") return ResizePassOrder::Pillow13;
  if (name == "pillow12") return ResizePassOrder::Pillow12;
  throw InvalidArgument(str_cat("pass_order='", name, "' is not known; use 'pillow13' (Pillow >= 13, the default) or "
                                "'pillow12' (Pillow 12.x) to match the Pillow the reference ran with"));
}

PreprocessConfig make_config(int64_t in_token_limit, int patch_size, int merge_size,
                             const std::string& pass_order = "pillow13") {
  PreprocessConfig cfg;
  cfg.pass_order = pass_order_of(pass_order);
  cfg.in_token_limit = in_token_limit;
  cfg.patch_size = patch_size;
  cfg.merge_h = cfg.merge_w = merge_size;
  return cfg;
}

pb::tuple preprocess(const pb::handle& image, int64_t in_token_limit, int patch_size, int merge_size,
                     const std::string& pass_order) {
  const ImageView view = image_view(image, "preprocess");
  const PreprocessConfig cfg = make_config(in_token_limit, patch_size, merge_size, pass_order);
  PixelValues pv;
  {
    pb::gil_scoped_release release;
    pv = preprocess_image(rgb_of(view), cfg);
  }
  const pb::ssize_t n = static_cast<pb::ssize_t>(pv.grid_h) * pv.grid_w;
  auto values = to_numpy(std::move(pv.data), {n, 3, patch_size, patch_size});
  return pb::make_tuple(values, pb::make_tuple(pv.grid_h, pv.grid_w));
}

pb::array_t<uint8_t> resize_bicubic(const pb::handle& image, int width, int height, const std::string& pass_order) {
  const ResizePassOrder order = pass_order_of(pass_order);
  const ImageView view = image_view(image, "resize_bicubic");
  LA_CHECK(view.channels == 3 && view.owner.ndim() == 3, InvalidArgument, "resize_bicubic: image has shape ",
           shape_str(view.owner), "; expected (H, W, 3) RGB. Convert other layouts with to_rgb(image) first "
           "(Pillow resizes RGBA/LA with premultiplied alpha, which this function does not emulate).");
  LA_CHECK(width > 0 && height > 0, InvalidArgument, "resize_bicubic: target size ", width, "x", height,
           " (width x height) must be at least 1x1");
  ImageU8 out;
  {
    pb::gil_scoped_release release;
    out = resize_bicubic_pil(rgb_of(view), width, height, order);
  }
  return image_to_numpy(std::move(out));
}

pb::array_t<uint8_t> to_rgb_py(const pb::handle& image) {
  const ImageView view = image_view(image, "to_rgb");
  ImageU8 out;
  {
    pb::gil_scoped_release release;
    out = rgb_of(view);
  }
  return image_to_numpy(std::move(out));
}

pb::dict plan_resize_py(int width, int height, int64_t in_token_limit, int patch_size, int merge_size) {
  const ResizePlan p = plan_resize(width, height, make_config(in_token_limit, patch_size, merge_size));
  pb::dict d;
  d["w1"] = p.width1;
  d["h1"] = p.height1;
  d["w2"] = p.width2;
  d["h2"] = p.height2;
  d["grid_h"] = p.grid_h;
  d["grid_w"] = p.grid_w;
  return d;
}

pb::array_t<uint8_t> decode_jpeg_py(const pb::handle& source) {
  ImageU8 out;
  const bool is_path = PyUnicode_Check(source.ptr()) || pb::hasattr(source, "__fspath__");
  if (is_path) {
    const pb::object fs = pb::module_::import("os").attr("fspath")(source);
    const std::string path = PyBytes_Check(fs.ptr()) ? std::string(pb::bytes(fs)) : std::string(pb::str(fs));
    pb::gil_scoped_release release;
    out = decode_jpeg_file(path);
  } else if (PyObject_CheckBuffer(source.ptr())) {
    Py_buffer buf;
    if (PyObject_GetBuffer(source.ptr(), &buf, PyBUF_SIMPLE) != 0) throw pb::error_already_set();
    try {
      pb::gil_scoped_release release;
      out = decode_jpeg(static_cast<const uint8_t*>(buf.buf), static_cast<size_t>(buf.len), "<bytes>");
    } catch (...) {
      PyBuffer_Release(&buf);
      throw;
    }
    PyBuffer_Release(&buf);
  } else {
    throw pb::type_error(str_cat("decode_jpeg expects a path (str or os.PathLike) or the file's bytes, got ",
                                 std::string(pb::str(pb::type::handle_of(source).attr("__name__")))));
  }
  return image_to_numpy(std::move(out));
}

}  // namespace

ImageU8 image_from_numpy(const pb::handle& obj, const char* what) {
  const ImageView v = image_view(obj, what);
  pb::gil_scoped_release release;
  return rgb_of(v);
}

void register_preprocess(pb::module_& m) {
  using namespace pb::literals;
  m.def("preprocess", &preprocess, "image"_a, "in_token_limit"_a = 25600, "patch_size"_a = 14, "merge_size"_a = 2,
        "pass_order"_a = "pillow13",
        "The official image preprocessing: token-limit downscale and snap to multiples of patch*merge with "
        "Pillow-exact BICUBIC resizes, ((u8/255) - 0.5)/0.5 in float32, patchified.\n\n"
        "image: uint8 ndarray (H, W) or (H, W, C), C = 1 grey, 2 grey+alpha (alpha dropped), 3 RGB, 4 RGBA "
        "(composited on white); any strides.\n"
        "pass_order: 'pillow13' (default) or 'pillow12', the Pillow whose resize pass order to reproduce (they "
        "differ only for images more than about twice as tall as wide that exceed the token limit).\n"
        "Returns (pixel_values float32 [gh*gw, 3, patch, patch], (gh, gw)).");
  m.def("resize_bicubic", &resize_bicubic, "image"_a, "width"_a, "height"_a, "pass_order"_a = "pillow13",
        "Byte-identical to PIL Image.resize((width, height), Image.BICUBIC) for an (H, W, 3) uint8 RGB image. "
        "pass_order: 'pillow13' (default) or 'pillow12', the Pillow release whose order of the two 1-D passes "
        "to follow.");
  m.def("plan_resize", &plan_resize_py, "width"_a, "height"_a, "in_token_limit"_a = 25600, "patch_size"_a = 14,
        "merge_size"_a = 2,
        "The sizes the preprocessing resizes an image of width x height to: dict with w1, h1 (after the "
        "token-limit downscale), w2, h2 (after snapping) and grid_h, grid_w (patches). Raises ValueError when "
        "a grid side would reach 512.");
  m.def("decode_jpeg", &decode_jpeg_py, "source"_a,
        "Decodes a JPEG (path or bytes) to an (H, W, 3) uint8 RGB array with libjpeg-turbo's accurate IDCT and "
        "fancy upsampling, as Pillow decodes it (grey replicated, CMYK converted like PIL). No EXIF rotation.");
  m.def("to_rgb", &to_rgb_py, "image"_a,
        "Converts an (H, W) or (H, W, C) uint8 image to (H, W, 3) RGB as the processor does: grey replicated, "
        "grey+alpha drops alpha, RGBA composited on white.");
}

}  // namespace la::py

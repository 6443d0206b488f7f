// Declarations shared by the binding files: the register_* helpers that make up `_core`, and the
// one numpy → image conversion every entry point uses.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "core/image.h"

namespace la::py {

void register_tokenizer(pybind11::module_& m);
void register_preprocess(pybind11::module_& m);
void register_engine(pybind11::module_& m);

// H×W×C uint8 array (any strides, C = 1/2/3/4, or H×W grey) → RGB image, converted with the GIL
// released; ValueError on anything else, naming the problem and the fix. `what` names the argument.
ImageU8 image_from_numpy(const pybind11::handle& obj, const char* what);

// Hands a vector to numpy without copying: a capsule owns it and frees it with the array.
template <typename T>
pybind11::array_t<T> to_numpy(std::vector<T>&& data, std::vector<pybind11::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(data));
  pybind11::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return pybind11::array_t<T>(std::move(shape), heap->data(), owner);
}

}  // namespace la::py

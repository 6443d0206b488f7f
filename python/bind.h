// Declarations shared by the binding files: the register_* helpers that make up `_core`, and the
// one numpy → image conversion every entry point uses.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/image.h"

namespace la::py {

void register_tokenizer(pybind11::module_& m);
void register_preprocess(pybind11::module_& m);
void register_engine(pybind11::module_& m);

// H×W×C uint8 array (any strides, C = 1/2/3/4, or H×W grey) → RGB image; ValueError on anything
// else, naming the problem and the fix. `what` names the argument in messages.
ImageU8 image_from_numpy(const pybind11::array& a, const char* what);

}  // namespace la::py

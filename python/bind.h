// Declarations of the register_* helpers that together make up the `_core` module.
#pragma once

#include <pybind11/pybind11.h>

namespace la::py {

void register_tokenizer(pybind11::module_& m);
void register_preprocess(pybind11::module_& m);
void register_engine(pybind11::module_& m);

}  // namespace la::py

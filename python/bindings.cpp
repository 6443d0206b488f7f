// PYBIND11_MODULE for locateanything_native._core: error translation, then one register_* per area.
#include <pybind11/pybind11.h>

#include "bind.h"
#include "core/error.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "locateanything_native C++ core (exact CPU inference for LocateAnything-3B)";
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const la::FileNotFound& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const la::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const la::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  la::py::register_tokenizer(m);
  la::py::register_preprocess(m);
  la::py::register_engine(m);
}

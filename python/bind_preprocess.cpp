// placeholder: register_preprocess is being written
#include "bind.h"
namespace la::py {
void register_preprocess(pybind11::module_&) {}
}  // namespace la::py

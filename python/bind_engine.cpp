// placeholder: register_engine is being written
#include "bind.h"
namespace la::py {
void register_engine(pybind11::module_&) {}
}  // namespace la::py

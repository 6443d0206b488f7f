// placeholder: register_tokenizer is being written
#include "bind.h"
namespace la::py {
void register_tokenizer(pybind11::module_&) {}
}  // namespace la::py

// Dispatch for the vectorised math kernels.
#include "kernels/vmath.h"

namespace la {

const VmathKernels& vmath_kernels(Isa isa) {
  if (isa >= Isa::Avx512 && detected_isa() >= Isa::Avx512) return vmath_kernels_avx512();
  if (isa >= Isa::Avx2 && detected_isa() >= Isa::Avx2) return vmath_kernels_avx2();
  return vmath_kernels_scalar();
}

const VmathKernels& vmath() { return vmath_kernels(active_isa()); }

}  // namespace la

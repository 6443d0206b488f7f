// Dispatch for the vectorised math kernels.
#include "kernels/vmath.h"

namespace la {

const VmathKernels& vmath_kernels(Isa isa) {
  return *pick_isa<const VmathKernels*>(
      isa, {{Isa::Avx512, &vmath_kernels_avx512()}, {Isa::Avx2, &vmath_kernels_avx2()}, {Isa::Scalar, &vmath_kernels_scalar()}});
}

const VmathKernels& vmath() { return vmath_kernels(active_isa()); }

}  // namespace la

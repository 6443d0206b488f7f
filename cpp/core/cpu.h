// Run-time CPU feature detection and the one switch that picks a kernel ISA.
#pragma once

namespace la {

// Kernel instruction sets, in increasing order of capability.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3 };

const char* isa_name(Isa isa);

// The best ISA this CPU and OS support (AVX2 needs FMA+F16C; AVX-512 needs F+BW+VL+DQ).
Isa detected_isa();

// The ISA kernels use: detected_isa(), lowered by the environment variable LA_ISA
// (scalar|avx2|avx512|avx512vnni) or by set_isa_override(). Never above detected_isa().
Isa active_isa();

// Caps the kernel ISA (tests use it to run the scalar twins); returns the previous cap.
Isa set_isa_cap(Isa cap);

}  // namespace la

// Run-time CPU feature detection and the one switch that picks a kernel ISA.
#pragma once

#include <initializer_list>
#include <utility>

namespace la {

// Kernel instruction sets, in increasing order of capability.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3 };

const char* isa_name(Isa isa);

// The best ISA this CPU and OS support (AVX2 needs FMA+F16C; AVX-512 needs F+BW+VL+DQ).
Isa detected_isa();

// The ISA kernels use: detected_isa(), lowered by the environment variable LA_ISA
// (scalar|avx2|avx512|avx512vnni) or by set_isa_override(). Never above detected_isa().
Isa active_isa();

// AVX-512 BF16 (vdpbf16ps) on this CPU, and whether kernels may use it now: the ISA cap at AVX-512
// or above (LA_ISA=avx2 / scalar turn it off with the rest of AVX-512), and not turned off by
// LOCATEANYTHING_BF16=0.
bool cpu_has_bf16();
bool bf16_units();

// Caps the kernel ISA (tests use it to run the scalar twins); returns the previous cap.
Isa set_isa_cap(Isa cap);

// The one ISA pick every kernel family uses: the variant for the widest ISA that both `isa` allows
// and this CPU has. `variants` are (ISA, table) pairs from the widest down; the last one, the scalar
// twin, is taken when nothing wider qualifies.
template <typename T>
T pick_isa(Isa isa, std::initializer_list<std::pair<Isa, T>> variants) {
  const Isa usable = static_cast<int>(isa) < static_cast<int>(detected_isa()) ? isa : detected_isa();
  const std::pair<Isa, T>* last = nullptr;
  for (const auto& v : variants) {
    last = &v;
    if (static_cast<int>(v.first) <= static_cast<int>(usable)) return v.second;
  }
  return last->second;
}

}  // namespace la

// CPUID-based ISA detection (via the compiler's cpu-model builtins) and the LA_ISA override.
#include "core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace la {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  static const Isa isa = [] {
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!avx2) return Isa::Scalar;
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (!avx512) return Isa::Avx2;
    return __builtin_cpu_supports("avx512vnni") ? Isa::Avx512Vnni : Isa::Avx512;
  }();
  return isa;
#else
  return Isa::Scalar;
#endif
}

bool cpu_has_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = detected_isa() >= Isa::Avx512 && __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

bool bf16_units() {
  // LOCATEANYTHING_BF16=0 keeps every kernel in float32 (the same results on CPUs with and without
  // BF16 units, e.g. across a mixed fleet).
  static const bool allowed = [] {
    const char* env = std::getenv("LOCATEANYTHING_BF16");
    return !env || (std::strcmp(env, "0") != 0 && std::strcmp(env, "off") != 0);
  }();
  return allowed && cpu_has_bf16() && active_isa() >= Isa::Avx512;
}

namespace {
Isa env_cap() {
  const char* env = std::getenv("LA_ISA");
  if (!env) return Isa::Avx512Vnni;
  if (!std::strcmp(env, "scalar")) return Isa::Scalar;
  if (!std::strcmp(env, "avx2")) return Isa::Avx2;
  if (!std::strcmp(env, "avx512")) return Isa::Avx512;
  return Isa::Avx512Vnni;
}
std::atomic<int> g_cap{static_cast<int>(env_cap())};
}  // namespace

Isa active_isa() {
  int cap = g_cap.load(std::memory_order_relaxed);
  int det = static_cast<int>(detected_isa());
  return static_cast<Isa>(cap < det ? cap : det);
}

Isa set_isa_cap(Isa cap) { return static_cast<Isa>(g_cap.exchange(static_cast<int>(cap))); }

}  // namespace la

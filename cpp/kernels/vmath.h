// Vectorised transcendental functions for the hot element-wise passes (softmax, SiLU, GELU-tanh).
// One algorithm in every ISA variant (Cody–Waite range reduction and a degree-6 polynomial with
// fused multiply-adds), so the scalar twin and the SIMD kernels give identical bits; relative error
// ≤ 2 ulp against the correctly rounded exp. Inputs below −86.9 give exactly 0 (true exp < 2e-38),
// so masked logits (−FLT_MAX) get probability 0.
#pragma once

#include <cstdint>

#include "core/cpu.h"

namespace la {

// Raw kernel signatures (one table per ISA).
struct VmathKernels {
  // y[i] = exp(x[i] − sub); returns Σ y in the 16-lane order of linear.h (lanes, then a tree).
  float (*exp_sum)(const float* x, float sub, float* y, int64_t n);
  // max of x[0..n) (n ≥ 1).
  float (*max)(const float* x, int64_t n);
  // x[i] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) with tanh(u) = 1 − 2/(exp(2u) + 1).
  void (*gelu_tanh)(float* x, int64_t n);
  // out[i] = g[i] / (1 + exp(−g[i])) · u[i].
  void (*silu_mul)(const float* g, const float* u, float* out, int64_t n);
};
const VmathKernels& vmath_kernels_scalar();
const VmathKernels& vmath_kernels_avx2();
const VmathKernels& vmath_kernels_avx512();
const VmathKernels& vmath_kernels(Isa isa);
// The table for active_isa().
const VmathKernels& vmath();

// The exp of the scalar twin (for callers that need one value with the same bits).
float exp_approx(float x);

}  // namespace la

// Row-wise and element-wise float32 kernels: norms, activations, residual adds, rotary embeddings.
// Plain C++ (the compiler vectorises them) except the transcendental passes, which go through the
// dispatched kernels of vmath.h; together they are a few percent of the run time.
#pragma once

#include <cstdint>

namespace la {

// out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * w + b over `dim` features (biased variance).
// x, out: [rows, dim] (may alias).
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b, float eps, float* out);

// out[r, :] = w * (x[r, :] * rsqrt(mean(x²) + eps)). x, out: [rows, dim] (may alias).
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* out);

// x = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) in place, n elements (vmath.h accuracy).
void gelu_tanh(float* x, int64_t n);
// x = 0.5·x·(1 + erf(x/√2)) in place, n elements.
void gelu_erf(float* x, int64_t n);
// gate_up: [rows, 2·inter] holding gate | up per row; out[r, i] = silu(gate)·up. out: [rows, inter].
void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out);
// y += x, n elements.
void add_inplace(float* y, const float* x, int64_t n);

// Rotate-half RoPE (Qwen2) on `heads` vectors of size head_dim per row, in place.
// x: [rows] × row stride ld, heads laid out contiguously from offset 0; cos/sin: [rows, head_dim/2].
void rope_rotate_half(float* x, int64_t rows, int64_t ld, int heads, int head_dim, const float* cos,
                      const float* sin);

// Interleaved-pair RoPE (MoonViT): pair (x[2j], x[2j+1]) rotated by angle j of the row.
// x: [rows] × row stride ld, heads contiguous from offset 0; cos/sin: [rows, head_dim/2].
void rope_interleaved(float* x, int64_t rows, int64_t ld, int heads, int head_dim, const float* cos,
                      const float* sin);

}  // namespace la

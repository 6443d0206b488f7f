// Norms, activations and rotary embeddings in float32, parallel over rows on the current pool.
#include "kernels/elementwise.h"

#include <cmath>

#include "core/thread_pool.h"
#include "kernels/vmath.h"

namespace la {

namespace {
// Σ f(x[i]) in double over 8 interleaved partial sums (lane i mod 8) and a fixed tree: the same bits
// on every machine, and eight independent add chains where one chain waited on each add's latency.
template <class F>
double sum_lanes8(const float* x, int64_t n, F f) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) s[l] += f(x[i + l]);
  for (int l = 0; i + l < n; ++l) s[l] += f(x[i + l]);
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}
}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* w, const float* b, float eps, float* out) {
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      const double mean = sum_lanes8(xr, dim, [](float v) { return static_cast<double>(v); }) / static_cast<double>(dim);
      const double sq = sum_lanes8(xr, dim, [mean](float v) {
        const double d = v - mean;
        return d * d;
      });
      const float rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(dim) + eps));
      const float meanf = static_cast<float>(mean);
      for (int64_t i = 0; i < dim; ++i) o[i] = (xr[i] - meanf) * rstd * w[i] + b[i];
    }
  });
}

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* w, float eps, float* out) {
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      const double sq = sum_lanes8(xr, dim, [](float v) { return static_cast<double>(v) * v; });
      const float var = static_cast<float>(sq / static_cast<double>(dim));
      const float inv = 1.0f / std::sqrt(var + eps);
      for (int64_t i = 0; i < dim; ++i) o[i] = w[i] * (xr[i] * inv);
    }
  });
}

void gelu_tanh(float* x, int64_t n) {
  const VmathKernels& vm = vmath();
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) { vm.gelu_tanh(x + i0, i1 - i0); });
}

void gelu_erf(float* x, int64_t n) {
  const float kInvSqrt2 = 0.7071067811865476f;
  parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float v = x[i];
      x[i] = 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
    }
  });
}

void silu_mul(const float* gate_up, int64_t rows, int64_t inter, float* out) {
  const VmathKernels& vm = vmath();
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      vm.silu_mul(gate_up + r * 2 * inter, gate_up + r * 2 * inter + inter, out + r * inter, inter);
  });
}

void add_inplace(float* y, const float* x, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
  });
}

void rope_rotate_half(float* x, int64_t rows, int64_t ld, int heads, int head_dim, const float* cos,
                      const float* sin) {
  const int half = head_dim / 2;
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* c = cos + r * half;
      const float* s = sin + r * half;
      for (int h = 0; h < heads; ++h) {
        float* v = x + r * ld + static_cast<int64_t>(h) * head_dim;
        for (int d = 0; d < half; ++d) {
          const float a = v[d], b = v[d + half];
          v[d] = a * c[d] - b * s[d];
          v[d + half] = b * c[d] + a * s[d];
        }
      }
    }
  });
}

void rope_interleaved(float* x, int64_t rows, int64_t ld, int heads, int head_dim, const float* cos,
                      const float* sin) {
  const int pairs = head_dim / 2;
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* c = cos + r * pairs;
      const float* s = sin + r * pairs;
      for (int h = 0; h < heads; ++h) {
        float* v = x + r * ld + static_cast<int64_t>(h) * head_dim;
        for (int j = 0; j < pairs; ++j) {
          const float a = v[2 * j], b = v[2 * j + 1];
          v[2 * j] = a * c[j] - b * s[j];
          v[2 * j + 1] = a * s[j] + b * c[j];
        }
      }
    }
  });
}

}  // namespace la

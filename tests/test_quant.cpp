// Quantised formats and linear kernels: round-trip error bounds, products against double references,
// scalar twin == AVX2 == AVX-512 == VNNI bit for bit, batch invariance, GPTQ repack, embedding rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/quant.h"
#include "weights/weights.h"

namespace la {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // unit roundoff of float32
const QuantFormat kFormats[] = {QuantFormat::Q4_32, QuantFormat::Q4_128, QuantFormat::Q8_32};

// Restores the ISA cap when the test scope ends.
struct IsaCap {
  explicit IsaCap(Isa cap) : previous(set_isa_cap(cap)) {}
  ~IsaCap() { set_isa_cap(previous); }
  Isa previous;
};

// The ISAs to compare: up to what this CPU has and what LA_ISA allows (CI without AVX-512 sets it).
std::vector<Isa> isas_to_test() {
  std::vector<Isa> out;
  const Isa top = active_isa();
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni})
    if (isa <= top) out.push_back(isa);
  return out;
}

// Gaussian rows with a per-row spread of magnitudes and a few outliers, as in trained weights.
std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.01f, 2.0f);
  std::vector<float> v(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float s = scale(rng);
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = s * gauss(rng);
  }
  for (int i = 0; i < rows * cols / 200; ++i) v[rng() % v.size()] *= 6.0f;
  return v;
}

std::vector<uint8_t> quantise(const std::vector<float>& w, int64_t N, int64_t K, QuantFormat fmt) {
  std::vector<uint8_t> q(quant_matrix_bytes(fmt, N, K));
  quantise_weights(w.data(), N, K, K, fmt, q.data());
  return q;
}

std::vector<BlockQ8A> quantise_x(const std::vector<float>& x, int64_t M, int64_t K, ActScale mode) {
  std::vector<BlockQ8A> q(M * K / 32);
  quantise_activations(x.data(), M, K, K, mode, q.data());
  return q;
}

// d of the weight block holding (n, k), read back from the tile bytes (Q4's d takes the sign of −max).
float signed_scale(const std::vector<uint8_t>& q, QuantFormat fmt, int64_t K, int64_t n, int64_t k) {
  const int64_t B = quant_block_size(fmt);
  const uint8_t* tile = q.data() + ((n / 16) * (K / B) + k / B) * quant_tile_bytes(fmt);
  uint16_t d;
  std::memcpy(&d, tile + 2 * (n % 16), 2);
  return f16_to_f32(d);
}
float weight_scale(const std::vector<uint8_t>& q, QuantFormat fmt, int64_t K, int64_t n, int64_t k) {
  return std::fabs(signed_scale(q, fmt, K, n, k));
}

std::vector<float> run_linear(const std::vector<BlockQ8A>& xq, int64_t M, int64_t K, const std::vector<uint8_t>& w,
                              QuantFormat fmt, int64_t N, const float* bias, int64_t ldy = -1) {
  if (ldy < 0) ldy = N;
  std::vector<float> y(M * ldy, -12345.0f);
  quant_linear(xq.data(), M, K, w.data(), fmt, N, bias, y.data(), ldy);
  return y;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Round trip: a uniform quantiser of step Δ has error variance Δ²/12 and error at most Δ/2. Codes are
// chosen against the stored fp16 scale, so Δ/2 holds exactly except where the grid is clamped: Q4's
// top code (+7) takes values up to max|w| = 8|d|(1 + 2^-11), an error up to |d|(1 + 2^-8).
TEST(QuantWeights, RoundTripErrorMatchesStepSize) {
  const int64_t N = 203, K = 1024;
  const std::vector<float> w = random_matrix(N, K, 7);
  for (QuantFormat fmt : kFormats) {
    SCOPED_TRACE(quant_format_name(fmt));
    const std::vector<uint8_t> q = quantise(w, N, K, fmt);
    std::vector<float> back(N * K);
    dequantise_weights(q.data(), fmt, N, K, 0, N, back.data());
    double err2 = 0, model2 = 0, sig2 = 0;
    int64_t clamped = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const double ds = signed_scale(q, fmt, K, n, k), d = std::fabs(ds);
        const double e = std::fabs(back[n * K + k] - w[n * K + k]);
        const bool top = fmt != QuantFormat::Q8_32 && w[n * K + k] / ds > 7.5;
        if (top) ++clamped;
        ASSERT_LE(e, (top ? 1.0 + 1.0 / 256 : 0.5 * (1 + 1e-5)) * d + 1e-30) << "n=" << n << " k=" << k;
        err2 += e * e;
        model2 += d * d / 12;
        sig2 += double(w[n * K + k]) * w[n * K + k];
      }
    // The max element of each block is exact, so the ratio sits just below 1 (31/32 for B = 32).
    EXPECT_GT(err2 / model2, 0.85);
    EXPECT_LT(err2 / model2, 1.10);
    const double nmse = err2 / sig2, bound = 1.10 * model2 / sig2;
    EXPECT_LT(nmse, bound);
    RecordProperty("nmse", std::to_string(nmse));
    std::printf("[          ] %-7s NMSE %.3g (bound %.3g), clamped %lld of %lld\n", quant_format_name(fmt), nmse,
                bound, static_cast<long long>(clamped), static_cast<long long>(N * K));
  }
}

TEST(QuantWeights, ZeroBlocksAndBf16Input) {
  const int64_t N = 20, K = 128;
  std::vector<float> w = random_matrix(N, K, 3);
  for (int64_t k = 0; k < 32; ++k) w[5 * K + k] = 0.0f;  // one all-zero block
  std::vector<uint16_t> wb(N * K);
  for (size_t i = 0; i < w.size(); ++i) {
    wb[i] = f32_to_bf16(w[i]);
    w[i] = bf16_to_f32(wb[i]);
  }
  for (QuantFormat fmt : kFormats) {
    const std::vector<uint8_t> a = quantise(w, N, K, fmt);
    std::vector<uint8_t> b(a.size());
    quantise_weights_bf16(wb.data(), N, K, K, fmt, b.data());
    EXPECT_EQ(a, b) << quant_format_name(fmt);
    std::vector<float> back(N * K);
    dequantise_weights(a.data(), fmt, N, K, 0, N, back.data());
    if (fmt != QuantFormat::Q4_128)
      for (int64_t k = 0; k < 32; ++k) EXPECT_EQ(back[5 * K + k], 0.0f);
  }
}

// The weight quantiser has a scalar twin and an AVX-512 variant; both must write the same bytes, also
// for all-zero blocks (with −0), ties for the largest magnitude, and scales that underflow fp16.
TEST(QuantWeights, IsaVariantsBitIdentical) {
  const int64_t N = 37, K = 512;
  std::vector<float> w = random_matrix(N, K, 9);
  for (int64_t k = 0; k < 32; ++k) w[k] = k % 2 ? 0.0f : -0.0f;
  for (int64_t k = 0; k < 128; ++k) w[K + k] = (k % 5) * 0.25f - 0.5f;  // ±0.5 tie for the max
  w[K + 7] = 0.5f;
  for (int64_t k = 0; k < 128; ++k) w[2 * K + k] = (k % 3 - 1) * 3e-7f;  // d below fp16's normal range
  for (int64_t k = 0; k < 128; ++k) w[3 * K + k] = (k % 3 - 1) * 1e-9f;  // d rounds to zero
  for (QuantFormat fmt : kFormats) {
    std::vector<uint8_t> ref;
    for (Isa isa : isas_to_test()) {
      IsaCap cap(isa);
      const std::vector<uint8_t> q = quantise(w, N, K, fmt);
      if (ref.empty()) {
        ref = q;
      } else {
        EXPECT_EQ(ref, q) << quant_format_name(fmt) << " " << isa_name(isa);
      }
    }
  }
}

// bf16 widening (the quantiser's input from a bf16 checkpoint): every ISA gives the scalar twin's
// bits for every bf16 pattern (signed zeros, subnormals, infinities, NaNs), at lengths with tails.
TEST(QuantWeights, WidenBf16IsaVariantsBitIdentical) {
  std::vector<uint16_t> all(65536 + 13);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
  for (int64_t n : {int64_t(1), int64_t(15), int64_t(17), int64_t(33), static_cast<int64_t>(all.size())}) {
    std::vector<float> ref(n), got(n);
    quant_kernels_scalar().widen_bf16(all.data(), n, ref.data());
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &ref[i], 4);
      ASSERT_EQ(bits, uint32_t(all[i]) << 16);
    }
    for (Isa isa : isas_to_test()) {
      quant_kernels(isa).widen_bf16(all.data(), n, got.data());
      EXPECT_EQ(std::memcmp(ref.data(), got.data(), n * sizeof(float)), 0) << isa_name(isa) << " n=" << n;
    }
  }
}

TEST(QuantActivations, RoundTripAndOffsets) {
  const int64_t M = 9, K = 2048;
  std::vector<float> x = random_matrix(M, K, 11);
  for (int64_t k = 64; k < 96; ++k) x[k] = 0.0f;                  // zero block: q = 0
  for (int64_t k = 96; k < 128; ++k) x[k] = (k % 3 - 1) * 1e-30f;  // tiny values
  for (int64_t k = 128; k < 160; ++k) x[k] = k == 128 ? 127.0f : (k % 9) - 3.5f;  // d = 1: exact ties
  for (ActScale mode : {ActScale::Max, ActScale::Pow2}) {
    SCOPED_TRACE(mode == ActScale::Max ? "Max" : "Pow2");
    const std::vector<BlockQ8A> q = quantise_x(x, M, K, mode);
    std::vector<float> back(M * K);
    dequantise_activations(q.data(), M, K, back.data());
    double err2 = 0, model2 = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < K / 32; ++j) {
        const BlockQ8A& b = q[j * M + m];
        int32_t sum = 0;
        float amax = 0;
        for (int i = 0; i < 32; ++i) {
          sum += b.q[i];
          amax = std::max(amax, std::fabs(x[m * K + 32 * j + i]));
          EXPECT_LE(std::abs(int(b.q[i])), 127);
        }
        EXPECT_EQ(b.offset, -8 * sum);
        EXPECT_EQ(b.d, activation_scale(amax, mode));
        if (mode == ActScale::Max) {
          EXPECT_EQ(b.d, amax / 127.0f);
        } else {
          // The smallest power of two at or above amax/127 (quant.h), within [2^-100, 2^100].
          int e = 0;
          EXPECT_EQ(std::frexp(b.d, &e), 0.5f) << "d = " << b.d << " is not a power of two";
          EXPECT_GE(b.d, 0x1p-100f);
          if (amax / 127.0f > 0x1p-100f) {
            EXPECT_GE(b.d, amax / 127.0f);
            EXPECT_LT(b.d / 2, amax / 127.0f);
          }
        }
        for (int i = 0; i < 32; ++i) {
          const double e = std::fabs(back[m * K + 32 * j + i] - x[m * K + 32 * j + i]);
          EXPECT_LE(e, 0.5 * b.d * (1 + 1e-5) + 1e-37);
          if (m == 0) continue;  // row 0 holds the hand-made blocks (ties err by exactly d/2)
          err2 += e * e;
          model2 += double(b.d) * b.d / 12;
        }
      }
    EXPECT_GT(err2 / model2, 0.85);
    EXPECT_LT(err2 / model2, 1.10);
  }
}

TEST(QuantActivations, IsaVariantsBitIdentical) {
  const int64_t M = 7, K = 4096;
  std::vector<float> x = random_matrix(M, K, 5);
  for (int64_t k = 0; k < 32; ++k) x[k] = 0.0f;
  for (int64_t k = 32; k < 64; ++k) x[k] = k == 32 ? -127.0f : (k % 9) - 3.5f;  // d = 1: exact ties
  for (ActScale mode : {ActScale::Max, ActScale::Pow2}) {
    std::vector<BlockQ8A> ref;
    for (Isa isa : isas_to_test()) {
      IsaCap cap(isa);
      std::vector<BlockQ8A> q = quantise_x(x, M, K, mode);
      if (ref.empty()) {
        ref = q;
        continue;
      }
      EXPECT_EQ(0, std::memcmp(ref.data(), q.data(), ref.size() * sizeof(BlockQ8A))) << isa_name(isa);
    }
  }
}

// Against a double-precision product of the quantised operands. The kernel's only float errors are
// the rounding of each block's scale product d_x·d_w and one rounding per fma step, so with
// t_j = d_x·d_w·isum_j: |y − Σ t_j| ≤ (nb + 2)·u·Σ|t_j| + u·|y| (the last term for the bias add).
TEST(QuantLinear, MatchesDoubleReferenceOfQuantisedOperands) {
  const int64_t M = 13, N = 45, K = 1024, nb = K / 32;
  const std::vector<float> w = random_matrix(N, K, 21), x = random_matrix(M, K, 22), bias = random_matrix(1, N, 23);
  for (QuantFormat fmt : kFormats) {
    SCOPED_TRACE(quant_format_name(fmt));
    const std::vector<BlockQ8A> xq = quantise_x(x, M, K, activation_scale_for(fmt));
    const std::vector<uint8_t> q = quantise(w, N, K, fmt);
    std::vector<float> wd(N * K);
    dequantise_weights(q.data(), fmt, N, K, 0, N, wd.data());
    for (Isa isa : isas_to_test()) {
      IsaCap cap(isa);
      const std::vector<float> y = run_linear(xq, M, K, q, fmt, N, bias.data());
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double ref = 0, mag = 0;
          for (int64_t j = 0; j < nb; ++j) {
            const BlockQ8A& b = xq[j * M + m];
            // wd = (q − 8)·d_w exactly, so this is d_x·d_w·isum_j.
            double dot = 0;
            for (int i = 0; i < 32; ++i) dot += double(b.q[i]) * wd[n * K + 32 * j + i];
            const double t = double(b.d) * dot;
            ref += t;
            mag += std::fabs(t);
          }
          ref += bias[n];
          const double tol = (nb + 2) * kU * mag + kU * std::fabs(ref) + 1e-30;
          ASSERT_NEAR(y[m * N + n], ref, tol) << isa_name(isa) << " m=" << m << " n=" << n;
        }
    }
  }
}

// Against the unquantised float product: x̂ŵ − xw = x̂(ŵ − w) + w(x̂ − x), so per output
// |ŷ − y| ≤ Σ_k |x̂_k|·e_w + |w_k|·d_x/2 with e_w the weight bound of the round-trip test. The
// errors are independent with variances Δ²/12, so the mean squared error must also stay near
// Σ_k (x_k²Δ_w² + w_k²Δ_x²)/12; we allow a factor 1.5.
TEST(QuantLinear, CloseToFloatProduct) {
  const int64_t M = 20, N = 64, K = 2048, nb = K / 32;
  const std::vector<float> w = random_matrix(N, K, 31), x = random_matrix(M, K, 32);
  for (QuantFormat fmt : kFormats) {
    SCOPED_TRACE(quant_format_name(fmt));
    const std::vector<BlockQ8A> xq = quantise_x(x, M, K, activation_scale_for(fmt));
    std::vector<float> xd(M * K);
    dequantise_activations(xq.data(), M, K, xd.data());
    const std::vector<uint8_t> q = quantise(w, N, K, fmt);
    const std::vector<float> y = run_linear(xq, M, K, q, fmt, N, nullptr);
    const double ew = fmt == QuantFormat::Q8_32 ? 0.5 * (1 + 1e-5) : 1.0 + 1.0 / 256;
    double err2 = 0, model2 = 0, sig2 = 0;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double exact = 0, bound = 0, var = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double xv = x[m * K + k], wv = w[n * K + k];
          const double dw = weight_scale(q, fmt, K, n, k), dx = xq[(k / 32) * M + m].d;
          exact += xv * wv;
          bound += std::fabs(xd[m * K + k]) * ew * dw + std::fabs(wv) * 0.5 * dx * (1 + 1e-5);
          var += (xv * xv * dw * dw + wv * wv * dx * dx) / 12;
          mag += std::fabs(xd[m * K + k] * wv) + std::fabs(xv * wv);
        }
        const double e = y[m * N + n] - exact;
        ASSERT_LE(std::fabs(e), bound + (nb + 2) * kU * mag * 2) << "m=" << m << " n=" << n;
        err2 += e * e;
        model2 += var;
        sig2 += exact * exact;
      }
    EXPECT_LT(err2, 1.5 * model2);
    std::printf("[          ] %-7s product NMSE %.3g, error / predicted %.3f\n", quant_format_name(fmt), err2 / sig2,
                err2 / model2);
  }
}

// Every ISA variant gives the scalar twin's bits, on both the rows and the panel-GEMM paths.
TEST(QuantLinear, IsaVariantsBitIdentical) {
  const std::vector<Isa> isas = isas_to_test();
  if (isas.size() < 2) GTEST_SKIP() << "only the scalar kernels are available here";
  struct Shape {
    QuantFormat fmt;
    int64_t N, K;
  };
  const Shape shapes[] = {{QuantFormat::Q4_32, 37, 96},   {QuantFormat::Q4_32, 16, 32},
                          {QuantFormat::Q4_32, 100, 2048}, {QuantFormat::Q4_128, 45, 384},
                          {QuantFormat::Q4_128, 7, 128},   {QuantFormat::Q8_32, 33, 160},
                          {QuantFormat::Q8_32, 64, 1024},
                          // K past one 2048-element GEMM chunk: partial sums wait in y between chunks.
                          {QuantFormat::Q4_32, 21, 4160},  {QuantFormat::Q4_128, 18, 4224},
                          {QuantFormat::Q8_32, 40, 2080}};
  const std::vector<float> bias = random_matrix(1, 100, 41);
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    const std::vector<uint8_t> q = quantise(random_matrix(s.N, s.K, ++seed), s.N, s.K, s.fmt);
    // 20, 45 and 47 leave 2, 3 and 5 rows for the panel GEMM's last micro-tile.
    for (int64_t M : {1, 2, 3, 5, 6, 7, 12, 13, 20, 45, 47, 64, 100}) {
      SCOPED_TRACE(testing::Message() << quant_format_name(s.fmt) << " N=" << s.N << " K=" << s.K << " M=" << M);
      const std::vector<BlockQ8A> xq = quantise_x(random_matrix(M, s.K, ++seed), M, s.K, activation_scale_for(s.fmt));
      std::vector<float> ref;
      for (Isa isa : isas) {
        IsaCap cap(isa);
        const float* b = M % 2 ? bias.data() : nullptr;
        const std::vector<float> y = run_linear(xq, M, s.K, q, s.fmt, s.N, b, s.N + 3);
        if (isa == Isa::Scalar) {
          ref = y;
        } else {
          EXPECT_TRUE(same_bits(ref, y)) << isa_name(isa);
        }
      }
    }
  }
}

// The scale product d_x·d_w is exact (quant.h), so the AVX-512 kernels form it by adding d_x's
// exponent to d_w's bits. Check that against the scalar twin's float multiply where that is easiest
// to get wrong: zero and −0 weight scales over non-zero codes (GPTQ allows them), fp16 subnormal,
// largest and negative scales, and activation blocks of zeros, of subnormals, at the lower clamp of the
// activation scale (1e-35) and far above 1 (1e20).
TEST(QuantLinear, ExtremeScalesBitIdentical) {
  const std::vector<Isa> isas = isas_to_test();
  if (isas.size() < 2) GTEST_SKIP() << "only the scalar kernels are available here";
  const int64_t K = 256, N = 40;
  std::mt19937 rng(71);
  std::vector<int32_t> qweight(K / 8 * N);
  for (int32_t& v : qweight) v = static_cast<int32_t>(rng());
  const uint16_t special[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x7bff, 0xfbff, 0x3c00, 0xbc00};
  for (int64_t group : {32, 128}) {
    std::vector<uint16_t> scales(K / group * N);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (size_t i = 0; i < scales.size(); ++i) scales[i] = i % 3 == 0 ? special[(i / 3) % 8] : f32_to_f16(u(rng));
    const QuantFormat fmt = group == 32 ? QuantFormat::Q4_32 : QuantFormat::Q4_128;
    std::vector<uint8_t> w(quant_matrix_bytes(fmt, N, K));
    repack_gptq_q4(qweight.data(), scales.data(), K, N, group, w.data());
    for (int64_t M : {1, 5, 12, 13, 31}) {
      SCOPED_TRACE(testing::Message() << "group " << group << " M=" << M);
      std::vector<float> x = random_matrix(M, K, static_cast<uint32_t>(M));
      const float block_scale[] = {0.0f, 1e-35f, 1e-20f, 1.0f, 1e20f, 3e-39f};  // 3e-39: subnormal inputs
      for (int64_t m = 0; m < M; ++m)
        for (int64_t j = 0; j < K / 32; ++j)
          for (int i = 0; i < 32; ++i) x[m * K + 32 * j + i] *= block_scale[(m + j) % 6];
      const std::vector<BlockQ8A> xq = quantise_x(x, M, K, ActScale::Pow2);
      std::vector<float> ref;
      for (Isa isa : isas) {
        IsaCap cap(isa);
        const std::vector<float> y = run_linear(xq, M, K, w, fmt, N, nullptr);
        for (float v : y) ASSERT_TRUE(std::isfinite(v)) << isa_name(isa);
        if (isa == Isa::Scalar) {
          ref = y;
        } else {
          EXPECT_TRUE(same_bits(ref, y)) << isa_name(isa);
        }
      }
    }
  }
}

// A row gives the same bits alone (decode), inside an MTP step, inside a 100-row prefill, and under
// any thread count (hence any split of the output columns).
TEST(QuantLinear, BatchInvariant) {
  const int64_t N = 300, K = 512, M = 100;
  const std::vector<float> bias = random_matrix(1, N, 51), x = random_matrix(M, K, 52);
  for (QuantFormat fmt : kFormats) {
    const ActScale mode = activation_scale_for(fmt);
    const std::vector<BlockQ8A> xq = quantise_x(x, M, K, mode);
    // Rows quantised on their own, as a decode or MTP step would.
    auto rows = [&](int64_t m0, int64_t count) {
      return quantise_x(std::vector<float>(x.begin() + m0 * K, x.begin() + (m0 + count) * K), count, K, mode);
    };
    const std::vector<uint8_t> q = quantise(random_matrix(N, K, 53), N, K, fmt);
    for (Isa isa : isas_to_test()) {
      SCOPED_TRACE(testing::Message() << quant_format_name(fmt) << " " << isa_name(isa));
      IsaCap cap(isa);
      const std::vector<float> full = run_linear(xq, M, K, q, fmt, N, bias.data());
      for (int threads : {1, 2, 3, 5}) {
        ThreadPool pool(threads);
        PoolScope scope(&pool);
        EXPECT_TRUE(same_bits(full, run_linear(xq, M, K, q, fmt, N, bias.data()))) << threads << " threads";
        for (int64_t m : {0, 41, 99}) {
          const std::vector<float> y1 = run_linear(rows(m, 1), 1, K, q, fmt, N, bias.data());
          EXPECT_EQ(0, std::memcmp(y1.data(), full.data() + m * N, N * sizeof(float))) << "row " << m;
        }
        for (int64_t m0 : {0, 88}) {
          const std::vector<float> y12 = run_linear(rows(m0, 12), 12, K, q, fmt, N, bias.data());
          EXPECT_EQ(0, std::memcmp(y12.data(), full.data() + m0 * N, 12 * N * sizeof(float))) << "rows " << m0;
        }
      }
    }
  }
}

TEST(QuantRepack, GptqIsBitExact) {
  const int64_t K = 512, N = 37;
  std::mt19937 rng(61);
  std::vector<int32_t> qweight(K / 8 * N);
  for (int32_t& v : qweight) v = static_cast<int32_t>(rng());
  for (int64_t group : {32, 128}) {
    SCOPED_TRACE(group);
    std::vector<uint16_t> scales(K / group * N);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    for (uint16_t& s : scales) s = f32_to_f16(u(rng));
    scales[3] = 0x0001;  // fp16 subnormal
    scales[4] = 0x8000;  // −0
    const QuantFormat fmt = group == 32 ? QuantFormat::Q4_32 : QuantFormat::Q4_128;
    std::vector<uint8_t> out(quant_matrix_bytes(fmt, N, K));
    repack_gptq_q4(qweight.data(), scales.data(), K, N, group, out.data());
    std::vector<float> back(N * K);
    dequantise_weights(out.data(), fmt, N, K, 0, N, back.data());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const int q = (static_cast<uint32_t>(qweight[(k / 8) * N + n]) >> (4 * (k % 8))) & 15;
        const float expect = static_cast<float>(q - 8) * f16_to_f32(scales[(k / group) * N + n]);
        ASSERT_EQ(0, std::memcmp(&back[n * K + k], &expect, 4)) << "n=" << n << " k=" << k;
      }
  }
  std::vector<uint16_t> scales(K / 64 * N);
  std::vector<uint8_t> out(quant_matrix_bytes(QuantFormat::Q4_128, N, K));
  EXPECT_THROW(repack_gptq_q4(qweight.data(), scales.data(), K, N, 64, out.data()), InvalidArgument);
}

TEST(QuantEmbedding, RowsMatchDequantisedTable) {
  const int64_t V = 77, K = 256;
  const std::vector<float> table = random_matrix(V, K, 71);
  for (QuantFormat fmt : {QuantFormat::Q4_32, QuantFormat::Q4_128}) {
    const std::vector<uint8_t> q = quantise(table, V, K, fmt);
    std::vector<float> all(V * K);
    dequantise_weights(q.data(), fmt, V, K, 0, V, all.data());
    const std::vector<int32_t> ids = {0, 76, 15, 16, 15, 40};
    const int64_t ldo = K + 5;
    std::vector<float> rows(ids.size() * ldo, 0.0f);
    dequantise_rows(q.data(), fmt, V, K, ids.data(), static_cast<int64_t>(ids.size()), rows.data(), ldo);
    for (size_t i = 0; i < ids.size(); ++i)
      EXPECT_EQ(0, std::memcmp(&rows[i * ldo], &all[ids[i] * K], K * sizeof(float))) << "id " << ids[i];
    std::vector<float> part(3 * K);
    dequantise_weights(q.data(), fmt, V, K, 30, 33, part.data());
    EXPECT_EQ(0, std::memcmp(part.data(), &all[30 * K], 3 * K * sizeof(float)));
    const int32_t bad = static_cast<int32_t>(V);
    EXPECT_THROW(dequantise_rows(q.data(), fmt, V, K, &bad, 1, rows.data(), ldo), InvalidArgument);
  }
}

TEST(QuantLinear, RejectsBadShapes) {
  std::vector<uint8_t> w(quant_matrix_bytes(QuantFormat::Q4_128, 16, 256));
  std::vector<BlockQ8A> x(8);
  std::vector<float> y(16);
  EXPECT_THROW(quant_matrix_bytes(QuantFormat::Q4_128, 16, 96), InvalidArgument);
  EXPECT_THROW(quant_linear(x.data(), 1, 96, w.data(), QuantFormat::Q4_128, 16, nullptr, y.data(), 16),
               InvalidArgument);
  EXPECT_THROW(quant_linear(x.data(), 1, 256, w.data(), QuantFormat::Q4_128, 16, nullptr, y.data(), 8),
               InvalidArgument);
  std::vector<float> xf(40);
  EXPECT_THROW(quantise_activations(xf.data(), 1, 40, 40, ActScale::Pow2, x.data()), InvalidArgument);
}

// Q4 kernels add d_x's exponent instead of multiplying, so Max scales (not powers of two) must be
// refused, not turned into wrongly scaled outputs; Q8 kernels multiply and take either.
TEST(QuantLinear, Q4RefusesActivationsWithoutPow2Scales) {
  const int64_t N = 16, K = 256;
  const std::vector<float> x = random_matrix(3, K, 81), w = random_matrix(N, K, 82);
  std::vector<float> y(3 * N);
  for (QuantFormat fmt : kFormats) {
    SCOPED_TRACE(quant_format_name(fmt));
    const std::vector<uint8_t> q = quantise(w, N, K, fmt);
    const std::vector<BlockQ8A> pow2 = quantise_x(x, 3, K, ActScale::Pow2), max = quantise_x(x, 3, K, ActScale::Max);
    EXPECT_NO_THROW(quant_linear(pow2.data(), 3, K, q.data(), fmt, N, nullptr, y.data(), N));
    if (fmt == QuantFormat::Q8_32) {
      EXPECT_NO_THROW(quant_linear(max.data(), 3, K, q.data(), fmt, N, nullptr, y.data(), N));
    } else {
      EXPECT_THROW(quant_linear(max.data(), 3, K, q.data(), fmt, N, nullptr, y.data(), N), InvalidArgument);
    }
  }
}

TEST(QuantLinear, PaddedInputTakesNarrowRows) {
  // A [5, 24] layer stored as Q8_32 [5, 32] with 8 zero columns (pad_in = 8), fed rows of 24 floats:
  // the result equals feeding rows already padded with zeros to 32.
  ThreadPool pool(1);
  PoolScope scope(&pool);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t M = 3, N = 5, K = 24, Kp = 32;
  std::vector<float> w(N * Kp, 0.0f), x(M * K), xp(M * Kp, 0.0f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) w[n * Kp + k] = nd(rng);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xp[m * Kp + k] = x[m * K + k] = nd(rng);
  LinearWeight f;
  f.data = w.data();
  f.out = N;
  f.in = Kp;
  LinearWeight q = quantize_linear(f, QuantFormat::Q8_32);
  q.pad_in = Kp - K;
  std::vector<float> narrow(M * N), wide(M * N);
  q.apply(x.data(), M, K, narrow.data(), N);
  q.apply(xp.data(), M, Kp, wide.data(), N);
  EXPECT_EQ(narrow, wide);
  // Rows narrower than the layer's real input are refused.
  EXPECT_THROW(q.apply(x.data(), M, K - 1, narrow.data(), N), InvalidArgument);
}

}  // namespace
}  // namespace la

// AVX-512 float32 GEMM: B packed in 32-column panels per k-block, A packed in 12-row panels, a
// 12 × 32 register tile (24 accumulators) whose chains continue across k-blocks through C.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/sgemm.h"

namespace la {

namespace {

constexpr int64_t kMR = 12, kNR = 32, kKc = 256, kNc = 256, kMc = 768;

// Bp[panel][k][32] for columns [nb, nb + nc) and k in [kb, kb + kc), zero-padded past n_end.
// Written in order; each of the 32 source rows is read sequentially.
void pack_b(const void* B, bool bf16, int64_t ldb, int64_t nb, int64_t nc, int64_t n_end, int64_t kb, int64_t kc,
            float* Bp) {
  const int64_t panels = (nc + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t c0 = nb + p * kNR, cols = std::min(kNR, n_end - c0);
    float* dst = Bp + p * kc * kNR;
    for (int64_t k = 0; k < kc; ++k) {
      float* row = dst + k * kNR;
      if (bf16) {
        const uint16_t* src = static_cast<const uint16_t*>(B) + c0 * ldb + kb + k;
        for (int64_t c = 0; c < cols; ++c) {
          const uint32_t bits = static_cast<uint32_t>(src[c * ldb]) << 16;
          std::memcpy(row + c, &bits, 4);
        }
      } else {
        const float* src = static_cast<const float*>(B) + c0 * ldb + kb + k;
        for (int64_t c = 0; c < cols; ++c) row[c] = src[c * ldb];
      }
      for (int64_t c = cols; c < kNR; ++c) row[c] = 0.0f;
    }
  }
}

// Ap[panel][k][12] for all rows (zero rows past M), k in [kb, kb + kc).
void pack_a(const float* A, int64_t lda, int64_t M, int64_t kb, int64_t kc, float* Ap) {
  for (int64_t mb = 0; mb < M; mb += kMR) {
    float* dst = Ap + (mb / kMR) * kc * kMR;
    const int64_t rows = std::min(kMR, M - mb);
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < rows; ++i) dst[k * kMR + i] = A[(mb + i) * lda + kb + k];
      for (int64_t i = rows; i < kMR; ++i) dst[k * kMR + i] = 0.0f;
    }
  }
}

// rows × cols of the tile are real; acc starts from bias/0 on the first k-block, else from C.
void micro(const float* Ap, const float* Bp, int64_t kc, float* C, int64_t ldc, int64_t rows, int64_t cols, bool first,
           const float* bias) {
  const __mmask16 m0 = cols >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? static_cast<__mmask16>(0xffff)
                       : cols > 16 ? static_cast<__mmask16>((1u << (cols - 16)) - 1u)
                                   : static_cast<__mmask16>(0);
  __m512 acc[kMR][2];
  if (first) {
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      acc[i][0] = b0;
      acc[i][1] = b1;
    }
  } else {
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      acc[i][0] = i < rows ? _mm512_maskz_loadu_ps(m0, C + i * ldc) : _mm512_setzero_ps();
      acc[i][1] = i < rows ? _mm512_maskz_loadu_ps(m1, C + i * ldc + 16) : _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * kNR), b1 = _mm512_loadu_ps(Bp + k * kNR + 16);
    const float* a = Ap + k * kMR;
#pragma GCC unroll 12
    for (int i = 0; i < kMR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < kMR; ++i) {
    if (i >= rows) break;
    _mm512_mask_storeu_ps(C + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(C + i * ldc + 16, m1, acc[i][1]);
  }
}

void sgemm_avx512(const float* A, int64_t M, int64_t K, int64_t lda, const void* B, bool b_bf16, int64_t ldb,
                  const float* bias, float* C, int64_t ldc, int64_t n0, int64_t n1) {
  if (M <= 0 || n1 <= n0) return;
  if (K == 0) {  // no products: c = bias (or 0)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = n0; n < n1; ++n) C[m * ldc + n] = bias ? bias[n] : 0.0f;
    return;
  }
  // Per k-block and block of up to 768 rows: that part of A packed once (≤ 768 KiB, reused by every
  // column block), then column blocks of B packed once each (kc × 256, reused by every row panel).
  thread_local std::vector<float> bp, ap;
  bp.resize(static_cast<size_t>(kKc * ((kNc + kNR - 1) / kNR) * kNR));
  ap.resize(static_cast<size_t>(kKc * kMc));
  for (int64_t kb = 0; kb < K; kb += kKc) {
    const int64_t kc = std::min(kKc, K - kb);
    for (int64_t m0 = 0; m0 < M; m0 += kMc) {
      const int64_t mc = std::min(kMc, M - m0);
      pack_a(A + m0 * lda, lda, mc, kb, kc, ap.data());
      for (int64_t nb = n0; nb < n1; nb += kNc) {
        const int64_t nc = std::min(kNc, n1 - nb);
        pack_b(B, b_bf16, ldb, nb, nc, n1, kb, kc, bp.data());
        for (int64_t mb = 0; mb < mc; mb += kMR) {
          const float* a_panel = ap.data() + (mb / kMR) * kc * kMR;
          const int64_t rows = std::min(kMR, mc - mb);
          for (int64_t p = 0; p * kNR < nc; ++p) {
            const int64_t col = nb + p * kNR;
            micro(a_panel, bp.data() + p * kc * kNR, kc, C + (m0 + mb) * ldc + col, ldc, rows, std::min(kNR, n1 - col),
                  kb == 0, bias ? bias + col : nullptr);
          }
        }
      }
    }
  }
}

}  // namespace

SgemmKernel sgemm_kernel_avx512() { return sgemm_avx512; }

}  // namespace la

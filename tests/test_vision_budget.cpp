// The vision path's memory budget at the full native resolution (a 160×160 patch grid, L = 25,600):
// flash-style attention and a scaled-down MoonViT tower stay within bounds derived from the buffers
// that must exist, far below the L²·heads·4 bytes of materialised scores; plus tiled attention
// against an untiled double-precision reference within a derived error bound.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "kernels/attention.h"
#include "vision/vision_tower.h"
#include "test_util.h"

// ---------------------------------------------------------------------------------------------
// A counting allocator: the global operator new/delete of the la_tests binary keep live and peak
// byte counts (malloc's usable size, so the counts are exact whatever the STL asks for). Off under
// sanitizers, whose own operator new must stay in place (their shadow memory and quarantine also
// make memory figures meaningless there).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LA_BUDGET_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define LA_BUDGET_COUNTING 0
#endif
#endif
#ifndef LA_BUDGET_COUNTING
#define LA_BUDGET_COUNTING 1
#endif

namespace {
std::atomic<int64_t> g_live{0};  // stays 0 without the counting allocator
std::atomic<int64_t> g_peak{0};

#if LA_BUDGET_COUNTING
void note_alloc(void* p) {
  const auto n = static_cast<int64_t>(malloc_usable_size(p));
  const int64_t now = g_live.fetch_add(n) + n;
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}
void note_free(void* p) {
  if (p) g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
}
#endif
}  // namespace

#if LA_BUDGET_COUNTING
void* operator new(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  note_alloc(p);
  return p;
}
void* operator new(std::size_t n, std::align_val_t a) {
  void* p = nullptr;
  const std::size_t align = std::max(static_cast<std::size_t>(a), sizeof(void*));
  if (posix_memalign(&p, align, n ? n : 1) != 0) throw std::bad_alloc();
  note_alloc(p);
  return p;
}
void operator delete(void* p) noexcept {
  note_free(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { operator delete(p); }
#endif

namespace la {
namespace {

// Peak of operator-new bytes above the level at construction, and the growth of the process's
// peak RSS (getrusage; only grows when this code pushes RSS above any earlier peak, so it is a
// lower bound on what the code used, and an O(L²) allocation could not hide from it).
class MemoryProbe {
 public:
  MemoryProbe() : base_live_(g_live.load()), base_rss_kb_(max_rss_kb()) { g_peak.store(base_live_); }
  int64_t heap_growth() const { return g_peak.load() - base_live_; }
  int64_t rss_growth() const { return (max_rss_kb() - base_rss_kb_) * 1024; }

 private:
  static int64_t max_rss_kb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
  }
  int64_t base_live_;
  int64_t base_rss_kb_;
};

// 160×160 patches: 25,600 tokens, the native in_token_limit. Under sanitizers, where memory is not
// measured, a 48×48 grid still crosses every tile edge at a fraction of the time.
constexpr int kGrid = LA_BUDGET_COUNTING ? 160 : 48;
constexpr int64_t kL = int64_t{kGrid} * kGrid;
constexpr int kHidden = 16, kHeads = 2, kHeadDim = kHidden / kHeads, kInter = 64, kPatch = 14;
constexpr int kThreads = 2;
// Any flash-style kernel needs a score tile and an output accumulator per worker; 1 MiB per
// thread allows tiles up to 512×512 floats, still O(block²) and independent of L.
constexpr int64_t kTileBudgetPerThread = 1 << 20;
// Materialised scores of one layer: what the budget must stay far below.
constexpr double kDenseScoreBytes = double(kL) * double(kL) * kHeads * 4.0;

std::vector<float> random_vector(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// The budget does not depend on the kernel ISA, and the forced plain-C++ pass (LA_ISA=scalar in
// tests/run_all.sh) would spend ~35 s on the full-resolution runs; the native and AVX2 passes cover them.
bool forced_scalar() {
  const char* isa = std::getenv("LA_ISA");
  return isa && std::string(isa) == "scalar";
}

TEST(VisionBudget, AttentionAtFullResolutionUsesTilesOnly) {
  if (forced_scalar()) GTEST_SKIP() << "LA_ISA=scalar: the budget is measured in the native and AVX2 passes";
  // q, k, v interleaved per row as the tower's qkv buffer: [L, 3·hidden].
  const std::vector<float> qkv = random_vector(static_cast<size_t>(kL * 3 * kHidden), 1.0f, 1);
  std::vector<float> out(static_cast<size_t>(kL * kHidden));
  ThreadPool pool(kThreads);
  PoolScope scope(&pool);
  const auto t0 = std::chrono::steady_clock::now();
  MemoryProbe probe;
  attention_bidirectional(qkv.data(), qkv.data() + kHidden, qkv.data() + 2 * kHidden, 3 * kHidden, kL, kHeads,
                          kHeadDim, 1.0f / std::sqrt(float(kHeadDim)), out.data(), kHidden);
  const int64_t heap = probe.heap_growth(), rss = probe.rss_growth();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (float x : out) ASSERT_TRUE(std::isfinite(x));

  // Inputs and output are the caller's; the kernel may only add per-thread tiles.
  const int64_t heap_bound = kThreads * kTileBudgetPerThread + (64 << 10);
  // RSS also sees OpenBLAS's per-thread buffers and thread stacks (not operator new): 64 MiB slack.
  const int64_t rss_bound = heap_bound + (64 << 20);
  std::printf("[ budget ] attention L=%lld heads=%d head_dim=%d: %.2f s, heap peak +%.3f MiB (bound %.2f), "
              "max RSS +%.2f MiB (bound %.1f); dense scores would be %.0f MiB\n",
              static_cast<long long>(kL), kHeads, kHeadDim, secs, mib(heap), mib(heap_bound), mib(rss), mib(rss_bound),
              mib(kDenseScoreBytes));
  if (!LA_BUDGET_COUNTING) GTEST_SKIP() << "memory bounds are not measured under sanitizers";
  EXPECT_LE(heap, heap_bound);
  EXPECT_LE(rss, rss_bound);
  EXPECT_LT(double(rss_bound), kDenseScoreBytes / 32);
}

// A random MoonViT checkpoint (config.json + model.safetensors, F32) of the given size in `dir`.
void write_tiny_vision_checkpoint(const std::string& dir) {
  nlohmann::json cfg = {
      {"vision_config",
       {{"hidden_size", kHidden}, {"num_attention_heads", kHeads}, {"num_hidden_layers", 1},
        {"intermediate_size", kInter}, {"patch_size", kPatch}, {"init_pos_emb_height", 8},
        {"init_pos_emb_width", 8}, {"merge_kernel_size", {2, 2}}}},
      {"text_config",
       {{"hidden_size", 16}, {"intermediate_size", 32}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
        {"num_key_value_heads", 1}, {"vocab_size", 152681}}}};
  std::ofstream(dir + "/config.json") << cfg.dump(1);

  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    float scale;  // 0: ones (norm weights); < 0: zeros
  };
  const int64_t H = kHidden, P = kPatch;
  const std::string b = "vision_model.encoder.blocks.0.";
  const std::vector<Entry> entries = {
      {"vision_model.patch_embed.proj.weight", {H, 3, P, P}, 0.05f},
      {"vision_model.patch_embed.proj.bias", {H}, 0.02f},
      {"vision_model.patch_embed.pos_emb.weight", {8, 8, H}, 0.02f},
      {b + "norm0.weight", {H}, 0.0f},
      {b + "norm0.bias", {H}, -1.0f},
      {b + "norm1.weight", {H}, 0.0f},
      {b + "norm1.bias", {H}, -1.0f},
      {b + "wqkv.weight", {3 * H, H}, 0.3f},
      {b + "wqkv.bias", {3 * H}, 0.02f},
      {b + "wo.weight", {H, H}, 0.2f},
      {b + "wo.bias", {H}, 0.02f},
      {b + "mlp.fc0.weight", {kInter, H}, 0.2f},
      {b + "mlp.fc0.bias", {kInter}, 0.02f},
      {b + "mlp.fc1.weight", {H, kInter}, 0.2f},
      {b + "mlp.fc1.bias", {H}, 0.02f},
      {"vision_model.encoder.final_layernorm.weight", {H}, 0.0f},
      {"vision_model.encoder.final_layernorm.bias", {H}, -1.0f},
  };
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  uint32_t seed = 100;
  for (const Entry& e : entries) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    std::vector<float> v = e.scale > 0 ? random_vector(static_cast<size_t>(n), e.scale, seed++)
                                       : std::vector<float>(static_cast<size_t>(n), e.scale == 0 ? 1.0f : 0.0f);
    header[e.name] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {data.size(), data.size() + 4 * n}}};
    data.append(reinterpret_cast<const char*>(v.data()), static_cast<size_t>(4 * n));
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the data area starts 8-byte aligned, as safetensors writes it
  const uint64_t len = h.size();
  std::ofstream f(dir + "/model.safetensors", std::ios::binary);
  f.write(reinterpret_cast<const char*>(&len), 8);
  f << h << data;
}

TEST(VisionBudget, TowerAtFullResolutionKeepsActivationsLinear) {
  if (forced_scalar()) GTEST_SKIP() << "LA_ISA=scalar: the budget is measured in the native and AVX2 passes";
  const std::string dir = test::temp_dir("vision_budget");
  write_tiny_vision_checkpoint(dir);
  const ModelConfig cfg = load_model_config(dir);
  const WeightStore ws = WeightStore::open(dir);
  const VisionTower tower(cfg.vision, ws);
  const std::vector<float> pixels = random_vector(static_cast<size_t>(kL * 3 * kPatch * kPatch), 1.0f, 7);
  ThreadPool pool(kThreads);
  PoolScope scope(&pool);

  const auto t0 = std::chrono::steady_clock::now();
  MemoryProbe probe;
  std::vector<float> merged = tower.forward(pixels.data(), kGrid, kGrid);
  const int64_t heap = probe.heap_growth(), rss = probe.rss_growth();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(merged.size(), static_cast<size_t>(kL * kHidden));
  for (float x : merged) ASSERT_TRUE(std::isfinite(x));

  // The activations a forward pass needs, in floats: the residual stream x, the normed input, the
  // attention output, the projection/MLP output, the merged result and the interpolated position
  // table ([L, hidden] each: 6), qkv [L, 3·hidden], the MLP activation [L, intermediate], and the
  // 2-D RoPE cos/sin tables [L, head_dim/2] each (not all live at once, so the peak is a bit lower).
  const int64_t must_exist = 4 * kL * (6 * kHidden + 3 * kHidden + kInter + kHeadDim);
  // Twice that covers a copy of any one buffer or a different buffer plan; plus the tiles.
  const int64_t heap_bound = 2 * must_exist + kThreads * kTileBudgetPerThread;
  const int64_t rss_bound = heap_bound + (64 << 20);
  std::printf("[ budget ] tower %dx%d patches (L=%lld, hidden %d, %d heads, 1 layer): %.2f s, heap peak +%.2f MiB "
              "(activations %.2f, bound %.2f), max RSS +%.2f MiB (bound %.1f); dense scores would be %.0f MiB\n",
              kGrid, kGrid, static_cast<long long>(kL), kHidden, kHeads, secs, mib(heap), mib(must_exist),
              mib(heap_bound), mib(rss), mib(rss_bound), mib(kDenseScoreBytes));
  if (!LA_BUDGET_COUNTING) GTEST_SKIP() << "memory bounds are not measured under sanitizers";
  EXPECT_GE(heap, must_exist / 2);  // the probe does see the activations
  EXPECT_LE(heap, heap_bound);
  EXPECT_LE(rss, rss_bound);
  EXPECT_LT(double(rss_bound), kDenseScoreBytes / 32);
}

// Untiled softmax(q·kᵀ·scale)·v in double, with the float32 error bound of each output: the score
// error δ (γ_D of the |q|·|k| dot product, plus the scale and the max subtraction), exp's rounding,
// one rescale per key (the most any blocking can do) and the L-term sums give a relative error ε of
// every weight and of both sums, so |out − ref| ≤ 2ε · Σ p|v| / Σ p (+ u|ref| for the division).
void check_against_reference(int64_t L, int heads, int head_dim, uint32_t seed, int threads) {
  SCOPED_TRACE(testing::Message() << "L=" << L << " heads=" << heads << " head_dim=" << head_dim
                                  << " threads=" << threads);
  const int64_t W = int64_t{heads} * head_dim, ld = 3 * W;
  const std::vector<float> qkv = random_vector(static_cast<size_t>(L * ld), 1.0f, seed);
  std::vector<float> out(static_cast<size_t>(L * W));
  const float scale = 1.0f / std::sqrt(float(head_dim));
  {
    ThreadPool pool(threads);
    PoolScope scope(threads > 1 ? &pool : nullptr);
    attention_bidirectional(qkv.data(), qkv.data() + W, qkv.data() + 2 * W, ld, L, heads, head_dim, scale,
                            out.data(), W);
  }
  const double u = std::ldexp(1.0, -24);
  auto gamma = [u](double n) { return n * u / (1 - n * u); };
  double worst = 0, worst_ratio = 0;
  std::vector<double> s(static_cast<size_t>(L)), abs_dot(static_cast<size_t>(L));
  for (int h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < L; ++i) {
      const float* q = &qkv[i * ld + h * head_dim];
      double m = -INFINITY, max_abs_dot = 0;
      for (int64_t j = 0; j < L; ++j) {
        const float* k = &qkv[j * ld + W + h * head_dim];
        double dot = 0, ad = 0;
        for (int d = 0; d < head_dim; ++d) dot += double(q[d]) * k[d], ad += std::fabs(double(q[d]) * k[d]);
        s[j] = dot * scale;
        abs_dot[j] = ad * scale;
        m = std::max(m, s[j]);
        max_abs_dot = std::max(max_abs_dot, ad * scale);
      }
      double sum = 0, max_shift = 0;
      for (int64_t j = 0; j < L; ++j) {
        max_shift = std::max(max_shift, m - s[j]);
        s[j] = std::exp(s[j] - m);
        sum += s[j];
      }
      // Score error: dot product + scaling + (score − max) rounding; both the score and the max err.
      const double delta = 2 * (gamma(head_dim) * max_abs_dot + u * max_abs_dot) + u * max_shift;
      const double eps = delta + 4 * u /* exp: <= 2 ulp */ + 3 * u * double(L) /* rescales */ + gamma(double(L));
      for (int d = 0; d < head_dim; ++d) {
        double num = 0, mag = 0;
        for (int64_t j = 0; j < L; ++j) {
          const double v = qkv[j * ld + 2 * W + h * head_dim + d];
          num += s[j] * v;
          mag += s[j] * std::fabs(v);
        }
        const double ref = num / sum;
        const double bound = 2 * eps * mag / sum + u * std::fabs(ref);
        const double err = std::fabs(double(out[i * W + h * head_dim + d]) - ref);
        worst = std::max(worst, err);
        worst_ratio = std::max(worst_ratio, err / bound);
        ASSERT_LE(err, bound) << "row " << i << " head " << h << " dim " << d << ": " << out[i * W + h * head_dim + d]
                              << " vs " << ref;
      }
    }
  }
  std::printf("[ budget ] tiled vs untiled L=%lld heads=%d head_dim=%d threads=%d: worst |diff| %.3g, "
              "worst diff/bound %.3g\n",
              static_cast<long long>(L), heads, head_dim, threads, worst, worst_ratio);
}

TEST(VisionBudget, TiledAttentionEqualsUntiledReference) {
  // Lengths around the tile edges (partial query and key blocks), the budget test's head shape
  // and MoonViT's (head_dim 72).
  check_against_reference(1, 1, 8, 11, 1);
  check_against_reference(65, 2, 8, 12, 2);
  check_against_reference(700, kHeads, kHeadDim, 13, 2);
  check_against_reference(517, 2, 72, 14, 2);
}

}  // namespace
}  // namespace la

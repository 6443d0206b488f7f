// Decoding logic from hand-made probabilities and logits: every handle_pattern rule, every block
// route (box, empty box, ref, x0), the hybrid abnormal rule, the fallback-and-return path, stop
// rules, the loop guard and the sampler's tie and threshold semantics.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "decoder/decode_loop.h"
#include "decoder/sampler.h"

namespace la {
namespace {

// A small vocabulary with the same structure as the real one.
constexpr int64_t V = 256;
TokenIds small_ids() {
  TokenIds t;
  t.image_context = 1;
  t.box_start = 10;
  t.box_end = 11;
  t.ref_start = 12;
  t.ref_end = 13;
  t.none = 5;
  t.null = 6;
  t.im_end = 7;
  t.mask = 8;
  t.switch_id = 9;
  t.coord_start = 100;
  t.coord_end = 200;
  return t;
}
const TokenIds ID = small_ids();
int32_t C(int v) { return ID.coord_start + v; }

// probs[6][V]: each row a distribution given as {id: p}; the rest spread uniformly.
std::vector<float> rows(const std::vector<std::vector<std::pair<int32_t, float>>>& spec) {
  std::vector<float> p(6 * V, 0.0f);
  for (int r = 0; r < 6; ++r) {
    float used = 0;
    for (auto [id, v] : spec[r]) {
      p[r * V + id] = v;
      used += v;
    }
    // Leftover mass on low non-special ids 20..29, each below every named probability here.
    for (int i = 20; i < 30; ++i) p[r * V + i] = (1.0f - used) / 10.0f;
  }
  return p;
}

std::vector<int32_t> argmaxes(const std::vector<float>& p) {
  std::vector<int32_t> x0;
  for (int r = 0; r < 6; ++r) x0.push_back(argmax_first(p.data() + r * V, V));
  return x0;
}

BlockDecision decide(const std::vector<float>& p, GenerationMode mode) {
  return decide_block(p.data(), V, argmaxes(p), ID, mode);
}

TEST(BlockDecision, BoxRoute) {
  auto p = rows({{{ID.box_start, 0.9f}},
                 {{C(10), 0.95f}},
                 {{C(20), 0.95f}},
                 {{C(30), 0.95f}},
                 {{C(40), 0.95f}},
                 {{ID.box_end, 0.5f}}});
  for (auto mode : {GenerationMode::Fast, GenerationMode::Hybrid}) {
    BlockDecision d = decide(p, mode);
    EXPECT_EQ(d.route, BlockRoute::Box);
    EXPECT_EQ(d.tokens, (std::vector<int32_t>{ID.box_start, C(10), C(20), C(30), C(40), ID.box_end}));
    PatternResult r = handle_pattern(d.tokens, ID, mode);
    EXPECT_EQ(r.type, "coord_box");
    EXPECT_EQ(r.tokens.size(), 6u);
  }
}

TEST(BlockDecision, EndScoreIsSummedOverEndNullImEndAndComparedInFloat32) {
  // 0.1f + 0.05f + 0.05f summed in float32 in that order is exactly representable near 0.2f.
  const float a = 0.1f, b = 0.05f, c = 0.05f;
  auto p = rows({{{ID.ref_start, 0.1f}}, {{C(1), 0.9f}}, {{C(2), 0.9f}}, {{C(3), 0.9f}}, {{C(4), 0.9f}},
                 {{ID.box_end, a}, {ID.null, b}, {ID.im_end, c}}});
  const float end = a + b + c;
  BlockDecision d = decide(p, GenerationMode::Fast);
  EXPECT_EQ(d.route, end >= 0.2f ? BlockRoute::Box : BlockRoute::X0);
  // Just below the threshold: no box.
  auto q = rows({{{ID.ref_start, 0.1f}}, {{C(1), 0.9f}}, {{C(2), 0.9f}}, {{C(3), 0.9f}}, {{C(4), 0.9f}},
                 {{ID.box_end, 0.19f}}});
  EXPECT_NE(decide(q, GenerationMode::Fast).route, BlockRoute::Box);
}

TEST(BlockDecision, EmptyBoxRouteAndItsStrictThresholds) {
  auto p = rows({{{ID.box_start, 0.7f}},
                 {{ID.none, 0.3f}},
                 {{ID.box_end, 0.3f}},
                 {{ID.null, 0.2f}},
                 {{ID.null, 0.2f}},
                 {{ID.null, 0.9f}}});
  BlockDecision d = decide(p, GenerationMode::Hybrid);
  EXPECT_EQ(d.route, BlockRoute::EmptyBox);  // P0[<box>] = 0.7f passes (>=)
  PatternResult r = handle_pattern(d.tokens, ID, GenerationMode::Hybrid);
  EXPECT_EQ(r.type, "empty_box");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.box_start, ID.none, ID.box_end}));
  // P1[none] exactly 0.2f does not pass (> 0.2f): then the end test decides (null at row 5 → legal),
  // but rows 1..4 hold no coordinates → no box; no ref; x0.
  auto q = rows({{{ID.box_start, 0.7f}},
                 {{ID.none, 0.2f}},
                 {{ID.box_end, 0.3f}},
                 {{ID.null, 0.2f}},
                 {{ID.null, 0.2f}},
                 {{ID.null, 0.9f}}});
  EXPECT_EQ(decide(q, GenerationMode::Hybrid).route, BlockRoute::X0);
}

TEST(BlockDecision, HybridAbnormalCoordinateBecomesTokenZero) {
  // Row 2: best coordinate at 0.5 (< 0.9), a second coordinate in the top-4 61 values away.
  auto p = rows({{{ID.box_start, 0.9f}},
                 {{C(10), 0.95f}},
                 {{C(20), 0.5f}, {C(81), 0.3f}},
                 {{C(30), 0.95f}},
                 {{C(40), 0.95f}},
                 {{ID.box_end, 0.9f}}});
  BlockDecision h = decide(p, GenerationMode::Hybrid);
  EXPECT_EQ(h.route, BlockRoute::Box);
  EXPECT_EQ(h.tokens[2], 0);
  EXPECT_TRUE(h.abnormal[1]);
  PatternResult r = handle_pattern(h.tokens, ID, GenerationMode::Hybrid);
  EXPECT_EQ(r.type, "error_box");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.box_start, C(10)}));
  EXPECT_TRUE(r.switch_to_ar);
  // Fast mode keeps the best coordinate.
  BlockDecision f = decide(p, GenerationMode::Fast);
  EXPECT_EQ(f.tokens[2], C(20));
  // A spread of exactly 60 is not abnormal (> 60 is).
  auto q = rows({{{ID.box_start, 0.9f}},
                 {{C(10), 0.95f}},
                 {{C(20), 0.5f}, {C(80), 0.3f}},
                 {{C(30), 0.95f}},
                 {{C(40), 0.95f}},
                 {{ID.box_end, 0.9f}}});
  EXPECT_EQ(decide(q, GenerationMode::Hybrid).tokens[2], C(20));
}

TEST(BlockDecision, NoCoordinateInTopFourMeansNoBox) {
  // Row 3 has no coordinate among its top-4 → no box; P0[<ref>] ≥ 0.6 → ref route.
  auto p = rows({{{ID.ref_start, 0.8f}},
                 {{50, 0.9f}},
                 {{51, 0.9f}, {C(5), 0.05f}},
                 {{ID.ref_end, 0.9f}},
                 {{ID.null, 0.9f}},
                 {{ID.null, 0.9f}}});
  BlockDecision d = decide(p, GenerationMode::Hybrid);
  EXPECT_EQ(d.route, BlockRoute::Ref);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{ID.ref_start, 50, 51, ID.ref_end, ID.null, ID.null}));
  PatternResult r = handle_pattern(d.tokens, ID, GenerationMode::Hybrid);
  EXPECT_EQ(r.type, "ref_object");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.ref_start, 50, 51, ID.ref_end}));
}

TEST(BlockDecision, RefPicksFirstNonCoordinateInTopFive) {
  // Row 1's top token is a coordinate; the ref path takes the best non-coordinate instead.
  auto p = rows({{{ID.ref_start, 0.6f}},
                 {{C(7), 0.6f}, {60, 0.3f}},
                 {{61, 0.9f}},
                 {{ID.ref_end, 0.9f}},
                 {{ID.null, 0.9f}},
                 {{ID.null, 0.9f}}});
  BlockDecision d = decide(p, GenerationMode::Fast);
  EXPECT_EQ(d.route, BlockRoute::Ref);
  EXPECT_EQ(d.tokens[1], 60);
}

TEST(BlockDecision, X0FallbackWhenNeitherCandidate) {
  auto p = rows({{{ID.ref_start, 0.59f}, {70, 0.4f}},
                 {{71, 0.9f}},
                 {{72, 0.9f}},
                 {{73, 0.9f}},
                 {{74, 0.9f}},
                 {{75, 0.9f}}});
  BlockDecision d = decide(p, GenerationMode::Hybrid);
  EXPECT_EQ(d.route, BlockRoute::X0);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{ID.ref_start, 71, 72, 73, 74, 75}));
}

TEST(HandlePattern, AllRules) {
  const auto H = GenerationMode::Hybrid, F = GenerationMode::Fast;
  auto run = [](std::vector<int32_t> x, GenerationMode m) { return handle_pattern(x, ID, m); };
  PatternResult r = run({ID.null, 1, 2, 3, 4, 5}, H);  // rule 1
  EXPECT_EQ(r.type, "im_end");
  EXPECT_EQ(r.tokens, std::vector<int32_t>{ID.im_end});
  EXPECT_TRUE(r.terminal);
  r = run({ID.im_end, 1, 2, 3, 4, 5}, F);  // rule 2
  EXPECT_EQ(r.type, "im_end");
  EXPECT_TRUE(r.terminal);
  r = run({ID.box_start, ID.none, 40, 41, 42, 43}, H);  // rule 3, whatever follows
  EXPECT_EQ(r.type, "empty_box");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.box_start, ID.none, ID.box_end}));
  r = run({ID.box_start, C(1), C(2), C(3), C(4), ID.box_end}, H);  // rule 4: 4 coordinates
  EXPECT_EQ(r.type, "coord_box");
  r = run({ID.box_start, C(1), C(2), ID.box_end, ID.null, ID.null}, H);  // rule 4: point
  EXPECT_EQ(r.type, "point_box");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.box_start, C(1), C(2), ID.box_end}));
  r = run({ID.box_start, C(1), ID.null, C(3), C(4), ID.box_end}, H);  // rule 4: hybrid error
  EXPECT_EQ(r.type, "error_box");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.box_start, C(1)}));
  r = run({ID.box_start, C(1), ID.null, C(3), C(4), ID.box_end}, F);  // rule 4: fast keeps it all
  EXPECT_EQ(r.type, "coord_box");
  EXPECT_EQ(r.tokens.size(), 6u);
  r = run({ID.box_start, ID.mask, ID.mask, ID.mask, ID.mask, ID.mask}, H);  // error with coord_ix 1
  EXPECT_EQ(r.tokens, std::vector<int32_t>{ID.box_start});
  r = run({ID.ref_start, 50, ID.ref_end, ID.ref_end, ID.null, 3}, H);  // rule 5: null cut, double </ref>
  EXPECT_EQ(r.type, "ref_object");
  EXPECT_EQ(r.tokens, (std::vector<int32_t>{ID.ref_start, 50, ID.ref_end}));
  r = run({50, 51, ID.im_end, 52, 53, 54}, H);  // rule 5 keeps an inner im_end and goes on
  EXPECT_EQ(r.type, "ref_object");
  EXPECT_FALSE(r.terminal);
  EXPECT_EQ(r.tokens.size(), 6u);
}

TEST(ArClassification, HybridAndSlow) {
  EXPECT_EQ(classify_ar_token(ID.box_end, ID, GenerationMode::Hybrid), "box_end_ar");
  EXPECT_EQ(classify_ar_token(C(3), ID, GenerationMode::Hybrid), "coord_ar");
  EXPECT_EQ(classify_ar_token(ID.none, ID, GenerationMode::Hybrid), "coord_ar");
  EXPECT_EQ(classify_ar_token(ID.im_end, ID, GenerationMode::Hybrid), "im_end");
  EXPECT_EQ(classify_ar_token(50, ID, GenerationMode::Hybrid), "im_end");
  EXPECT_EQ(classify_ar_token(ID.im_end, ID, GenerationMode::Slow), "im_end");
  EXPECT_EQ(classify_ar_token(ID.box_end, ID, GenerationMode::Slow), "continue_ar");
}

// Logits making `id` (almost surely) the pick of a row.
void one_hot(float* row, int32_t id) {
  for (int64_t i = 0; i < V; ++i) row[i] = 0.0f;
  row[id] = 30.0f;
}

TEST(Generation, HybridFallbackAndReturn) {
  GenerationOptions opt;
  opt.mode = GenerationMode::Hybrid;
  opt.max_new_tokens = 100;
  opt.record_steps = true;
  std::vector<int32_t> prompt = {40, 41, 42, 43, 44};
  Generation g(prompt, opt, ID, 0, V);
  std::vector<float> logits;

  // Step 1: MTP over the prompt; the block has a malformed third slot → error_box keeps <box> c1.
  auto plan = g.plan();
  EXPECT_EQ(plan.window, 6);
  EXPECT_EQ(plan.ids, (std::vector<int32_t>{40, 41, 42, 43, 44, 44, ID.mask, ID.mask, ID.mask, ID.mask, ID.mask}));
  EXPECT_EQ(plan.positions, (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(plan.keep_length, 5);
  logits.assign(6 * V, 0.0f);
  const int32_t block1[6] = {ID.box_start, C(1), 60, C(3), C(4), 61};
  for (int r = 0; r < 6; ++r) one_hot(&logits[r * V], block1[r]);
  g.consume(logits.data());
  EXPECT_EQ(g.result().steps.back().type, "error_box");
  EXPECT_EQ(g.result().steps.back().route, "x0");
  EXPECT_EQ(g.cache_length(), 5);

  // Step 2: AR over the kept tokens (q = coord_ix = 2): a coordinate.
  plan = g.plan();
  EXPECT_EQ(plan.window, 0);
  EXPECT_EQ(plan.ids, (std::vector<int32_t>{ID.box_start, C(1)}));
  EXPECT_EQ(plan.positions, (std::vector<int32_t>{5, 6}));
  logits.assign(V, 0.0f);
  one_hot(logits.data(), C(2));
  g.consume(logits.data());
  EXPECT_EQ(g.result().steps.back().type, "coord_ar");
  // Steps 3-4: two more coordinates, then </box> switches back to MTP.
  for (int32_t t : {C(3), C(4), ID.box_end}) {
    plan = g.plan();
    EXPECT_EQ(plan.ids.size(), 1u);
    logits.assign(V, 0.0f);
    one_hot(logits.data(), t);
    g.consume(logits.data());
  }
  EXPECT_EQ(g.result().steps.back().type, "box_end_ar");
  EXPECT_EQ(g.result().switch_to_ar, 1);
  // Step 6: MTP again with q = 1 + 6; row 0 picks <null> → im_end, stop.
  plan = g.plan();
  EXPECT_EQ(plan.window, 6);
  EXPECT_EQ(plan.ids.size(), 7u);
  EXPECT_EQ(plan.positions.front(), 10);
  EXPECT_EQ(plan.positions[1], 10);  // the anchor copy reuses the anchor's position
  logits.assign(6 * V, 0.0f);
  for (int r = 0; r < 6; ++r) one_hot(&logits[r * V], ID.null);
  g.consume(logits.data());
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result().stop_reason, "im_end_token");
  EXPECT_EQ(g.result().tokens,
            (std::vector<int32_t>{ID.box_start, C(1), C(2), C(3), C(4), ID.box_end, ID.im_end}));
  EXPECT_EQ(g.result().forward_calls, 6);
  // History labels: "ar" only for types containing "ar"; the terminal im_end is "mtp".
  const auto& h = g.result().history;
  ASSERT_EQ(h.size(), 6u);
  EXPECT_EQ(h[0].first, "mtp");
  EXPECT_EQ(h[1].first, "ar");
  EXPECT_EQ(h[4].first, "ar");
  EXPECT_EQ(h[5].first, "mtp");
}

TEST(Generation, HybridArStopsOnNonCoordinate) {
  GenerationOptions opt;
  opt.mode = GenerationMode::Hybrid;
  Generation g({40, 41}, opt, ID, 0, V);
  std::vector<float> logits(6 * V);
  const int32_t block[6] = {ID.box_start, 60, 60, 60, 60, 60};
  g.plan();
  for (int r = 0; r < 6; ++r) one_hot(&logits[r * V], block[r]);
  g.consume(logits.data());
  g.plan();
  logits.assign(V, 0.0f);
  one_hot(logits.data(), 77);
  g.consume(logits.data());
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result().stop_reason, "ar_non_coord_token_stop");
  EXPECT_EQ(g.result().tokens.back(), 77);  // the offending token is appended
}

TEST(Generation, LengthLimitIsCheckedBeforeEachStepAndMtpOvershoots) {
  GenerationOptions opt;
  opt.mode = GenerationMode::Fast;
  opt.max_new_tokens = 4;
  Generation g({40}, opt, ID, 0, V);
  std::vector<float> logits(6 * V);
  g.plan();
  const int32_t block[6] = {ID.box_start, C(1), C(2), C(3), C(4), ID.box_end};
  for (int r = 0; r < 6; ++r) one_hot(&logits[r * V], block[r]);
  g.consume(logits.data());
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result().stop_reason, "max_len");
  EXPECT_EQ(g.result().tokens.size(), 6u);  // 6 > 4: the block is not cut

  // model_max_length caps the limit too; a prompt already at the limit generates nothing.
  Generation none({40, 41, 42}, opt, ID, 3, V);
  EXPECT_TRUE(none.done());
  EXPECT_TRUE(none.result().tokens.empty());
}

TEST(Generation, SlowModeStopsOnImEnd) {
  GenerationOptions opt;
  opt.mode = GenerationMode::Slow;
  Generation g({40, 41, 42}, opt, ID, 0, V);
  std::vector<float> logits(V);
  auto plan = g.plan();
  EXPECT_EQ(plan.ids.size(), 3u);
  EXPECT_EQ(plan.window, 0);
  one_hot(logits.data(), 50);
  g.consume(logits.data());
  plan = g.plan();
  EXPECT_EQ(plan.ids, std::vector<int32_t>{50});
  EXPECT_EQ(plan.positions, std::vector<int32_t>{3});
  one_hot(logits.data(), ID.im_end);
  g.consume(logits.data());
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result().stop_reason, "im_end_token");
  EXPECT_EQ(g.result().history.back().first, "mtp");  // "im_end" has no "ar", as the reference labels it
}

TEST(Generation, LoopGuardIsOptIn) {
  for (bool guard : {false, true}) {
    GenerationOptions opt;
    opt.mode = GenerationMode::Fast;
    opt.max_new_tokens = 200;
    opt.loop_guard = guard;
    opt.loop_guard_repeats = 3;
    Generation g({40}, opt, ID, 0, V);
    std::vector<float> logits(6 * V);
    const int32_t block[6] = {ID.box_start, C(1), C(2), C(3), C(4), ID.box_end};
    int steps = 0;
    while (!g.done()) {
      g.plan();
      for (int r = 0; r < 6; ++r) one_hot(&logits[r * V], block[r]);
      g.consume(logits.data());
      ++steps;
    }
    if (guard) {
      EXPECT_EQ(g.result().stop_reason, "loop_guard");
      EXPECT_TRUE(g.result().loop_guard_fired);
      EXPECT_EQ(steps, 4);  // 3 repeats of the first box are tolerated
    } else {
      EXPECT_EQ(g.result().stop_reason, "max_len");
      EXPECT_FALSE(g.result().loop_guard_fired);
    }
  }
}

TEST(Sampler, RepetitionPenaltySignRule) {
  std::vector<float> l = {2.0f, -2.0f, 0.0f, 1.0f};
  PenaltySet seen(4);
  seen.add({0, 1, 2});
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  std::vector<float> expect_logits = {1.0f, -4.0f, 0.0f, 1.0f};
  std::vector<float> probs = l;
  logits_to_probs(probs.data(), 1, 4, seen, p);
  float z = 0;
  for (float v : expect_logits) z += std::exp(v - 1.0f);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(probs[i], std::exp(expect_logits[i] - 1.0f) / z, 1e-6f);
}

TEST(Sampler, TopPKeepsTheFirstTokenPastTheThreshold) {
  // softmax of log(p) gives back p: 0.5, 0.3, 0.15, 0.05. With top_p = 0.7 the cumulative sums are
  // 0.5, 0.8, ...: rank 1 is kept (the sum before it, 0.5, is not above 0.7), rank 2 is removed.
  std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.top_p = 0.7f;
  PenaltySet seen(4);
  logits_to_probs(l.data(), 1, 4, seen, p);
  EXPECT_NEAR(l[0], 0.5f / 0.8f, 1e-6f);
  EXPECT_NEAR(l[1], 0.3f / 0.8f, 1e-6f);
  EXPECT_EQ(l[2], 0.0f);
  EXPECT_EQ(l[3], 0.0f);
}

TEST(Sampler, TopKKeepsTiesAtTheKthValue) {
  std::vector<float> l = {3.0f, 1.0f, 2.0f, 2.0f, 0.5f};
  SamplingParams p;
  p.top_k = 2;
  PenaltySet seen(5);
  logits_to_probs(l.data(), 1, 5, seen, p);
  EXPECT_GT(l[2], 0.0f);
  EXPECT_GT(l[3], 0.0f);
  EXPECT_EQ(l[1], 0.0f);
  EXPECT_EQ(l[4], 0.0f);
}

TEST(Sampler, TiesResolveToLowestIndex) {
  std::vector<float> v = {0.1f, 0.4f, 0.4f, 0.1f, 0.4f};
  EXPECT_EQ(argmax_first(v.data(), 5), 1);
  EXPECT_EQ(top_k_indices(v.data(), 5, 4), (std::vector<int32_t>{1, 2, 4, 0}));
}

TEST(Sampler, SeededSamplingIsReproducible) {
  std::vector<float> v = {0.1f, 0.2f, 0.3f, 0.4f};
  std::mt19937_64 a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_categorical(v.data(), 4, a), sample_categorical(v.data(), 4, b));
  std::vector<float> zero_tail = {0.0f, 1.0f, 0.0f};
  std::mt19937_64 c(1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_categorical(zero_tail.data(), 3, c), 1);
}

}  // namespace
}  // namespace la

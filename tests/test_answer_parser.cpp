// Answer parsing: boxes, points and none with labels from the preceding <ref>, malformed pieces skipped.
#include <gtest/gtest.h>

#include "text/answer_parser.h"

#include <cmath>

namespace la {
namespace {

TEST(AnswerParser, BoxesPointsNoneAndLabels) {
  const std::string a =
      "<ref>person</ref><box><100><200><300><400></box><box><0><0><1000><1000></box>"
      "<ref>car</ref><box>none</box><box><500><250></box><|im_end|>";
  auto d = parse_answer(a, 640, 360);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].kind, Detection::Kind::Box);
  EXPECT_EQ(d[0].label, "person");
  EXPECT_EQ(d[0].x1, 100 / 1000.0 * 640);
  EXPECT_EQ(d[0].y2, 400 / 1000.0 * 360);
  EXPECT_EQ(d[1].label, "person");  // several boxes per ref
  EXPECT_EQ(d[1].x2, 640.0);
  EXPECT_EQ(d[2].kind, Detection::Kind::None);
  EXPECT_EQ(d[2].label, "car");
  EXPECT_EQ(d[3].kind, Detection::Kind::Point);
  EXPECT_EQ(d[3].x1, 320.0);
  EXPECT_EQ(d[3].y1, 90.0);
  EXPECT_EQ(d[3].raw[0], 500);
}

TEST(AnswerParser, NoClampingOrReorderingLikeTheOfficialParser) {
  auto d = parse_answer("<box><900><800><100><50></box>", 100, 100);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].x1, 90.0);
  EXPECT_EQ(d[0].x2, 10.0);
}

TEST(AnswerParser, MalformedPiecesAreSkipped) {
  for (const std::string a : {
           "<box><1><2><3></box>",                       // three coordinates
           "<box><1><2><3><4>",                           // unterminated
           "<box><1><2><3><4><5></box>",                  // five
           "<box>0</box><box><1><x></box>",               // junk
           "<ref>unterminated <box><1><2><3><4",          // open ref, unterminated box
           "<", "<box>", "<ref>", "</box><box>none", "",  // fragments
       }) {
    EXPECT_NO_THROW(parse_answer(a, 10, 10)) << a;
    EXPECT_TRUE(parse_answer(a, 10, 10).empty()) << a;
  }
  // An unterminated <ref> does not hide the boxes after it (the official parse_boxes finds them).
  auto r = parse_answer("<ref><box><240><315><681><980></box><box><1><2><3><4></box>", 1000, 1000);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].label, "");
  r = parse_answer("<ref>a</ref><box><1><2><3><4></box><ref>b<box><5><6><7><8></box>", 1000, 1000);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].label, "a");  // "b" never closed: the previous label stays
  // A malformed box does not hide the good one after it.
  auto d = parse_answer("<box><1><2></box><box><1><2><3></box><box><1><2><3><4></box>", 1000, 1000);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].kind, Detection::Kind::Point);
  EXPECT_EQ(d[1].kind, Detection::Kind::Box);
  EXPECT_EQ(d[1].x2, 3.0);
}

TEST(AnswerParser, ScoresAreGeometricMeansOfCoordinateProbabilities) {
  TokenIds ids;  // the released ids: <box> 151668, </box> 151669, <0> 151677
  auto c = [&](int v) { return ids.coord_start + v; };
  // <box><1><2><3><4></box> x <box>none... (ignored) <box><5><6></box>, a malformed run, then a box
  // that the text parser finds but whose coordinates differ from every run (score stays NaN).
  const std::vector<int32_t> tokens = {ids.box_start, c(1), c(2), c(3), c(4), ids.box_end,
                                       ids.box_start, c(5), c(6), ids.box_end,
                                       ids.box_start, c(7), ids.box_end};
  std::vector<float> probs(tokens.size(), 1.0f);
  probs[1] = 0.5f, probs[2] = 0.25f, probs[3] = 1.0f, probs[4] = 0.5f;
  probs[7] = 0.81f, probs[8] = 0.01f;
  auto d = parse_answer("<box><1><2><3><4></box><box><5><6></box><box><9><9><9><9></box><box>none</box>", 100, 100);
  ASSERT_EQ(d.size(), 4u);
  score_detections(d, tokens, probs, ids);
  EXPECT_NEAR(d[0].score, std::pow(0.5 * 0.25 * 1.0 * 0.5, 0.25), 1e-7);
  EXPECT_NEAR(d[1].score, std::sqrt(0.81 * 0.01), 1e-7);
  EXPECT_TRUE(std::isnan(d[2].score));
  EXPECT_TRUE(std::isnan(d[3].score));  // "none" has no coordinates
  // Fewer probabilities than tokens (a truncated record): no crash, nothing past the end is read.
  auto e = parse_answer("<box><1><2><3><4></box>", 10, 10);
  score_detections(e, tokens, std::vector<float>(3, 0.5f), ids);
  EXPECT_TRUE(std::isnan(e[0].score));
}

TEST(AnswerParser, EvalRuleTakesLabelledRunsClampsAndOrders) {
  // A run: its points first, then its boxes; values with spaces and decimals; clamped, corners ordered.
  auto items = parse_answer_eval("<ref>car</ref><box><900><800><100><50></box><box>< 5.5 ><2000></box>x"
                                 "<box><1><2><3><4></box><ref>dog</ref>text<box><1><2></box>",
                                 100, 50);
  ASSERT_EQ(items.size(), 2u);  // the box after "x" has no ref run; "dog" is not followed by a box
  EXPECT_TRUE(items[0].is_point);
  EXPECT_DOUBLE_EQ(items[0].pixels[0], 0.55);
  EXPECT_DOUBLE_EQ(items[0].pixels[1], 49);  // 2000/1000·50 = 100 → clamped to size − 1
  EXPECT_TRUE(items[0].integral[1]);
  EXPECT_FALSE(items[1].is_point);
  EXPECT_EQ(items[1].label, "car");
  EXPECT_DOUBLE_EQ(items[1].pixels[0], 10);  // ordered: min(90, 10)
  EXPECT_DOUBLE_EQ(items[1].pixels[2], 90);
  EXPECT_DOUBLE_EQ(items[1].pixels[1], 2.5);
  EXPECT_DOUBLE_EQ(items[1].pixels[3], 40);
  // Boxes only (the detection script), values above 10000 dropped, a run ends at a line break.
  EXPECT_EQ(parse_answer_eval("<ref>a</ref><box><1><2></box><box><1><2><3><4></box>", 10, 10, false).size(), 1u);
  EXPECT_TRUE(parse_answer_eval("<ref>a</ref><box><10001><2><3><4></box>", 10, 10).empty());
  EXPECT_TRUE(parse_answer_eval("<ref>a</ref><box><1><2>\n<3><4></box>", 10, 10).empty());
}

}  // namespace
}  // namespace la

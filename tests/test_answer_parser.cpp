// Answer parsing: boxes, points and none with labels from the preceding <ref>, malformed pieces skipped.
#include <gtest/gtest.h>

#include "model/answer_parser.h"

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

}  // namespace
}  // namespace la

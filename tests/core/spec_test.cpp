#include "core/spec.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pgolf {
namespace {

TEST(Spec, ParsesNamesParamsAndPipelines) {
  auto s = parse_spec("int5:clip=quantile:0.9999");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].name, "int5");
  EXPECT_EQ(s[0].get("clip").value(), "quantile:0.9999");
  EXPECT_EQ(s[0].to_string(), "int5:clip=quantile:0.9999");

  auto p = parse_spec("prune:0.03+int6");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].params[0].first, "");
  EXPECT_EQ(p[0].params[0].second, "0.03");
  EXPECT_EQ(p[1].name, "int6");

  EXPECT_EQ(parse_spec("zstd:22")[0].params[0].second, "22");
}

TEST(Spec, RejectsMalformed) {
  for (const char* bad : {"", "+int6", "int6+", ":x", "int6:", "int6:a=1,,b=2"}) EXPECT_THROW(parse_spec(bad), InputError) << bad;
  EXPECT_THROW(parse_number("1.5x", "n"), InputError);
  EXPECT_THROW(parse_number("nan", "n"), InputError);
  EXPECT_THROW(parse_integer("22.0", "n"), InputError);
  EXPECT_EQ(parse_integer("22", "n"), 22);
}

}  // namespace
}  // namespace pgolf

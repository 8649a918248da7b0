#include "core/rope_table.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/half.h"

namespace pgolf {
namespace {

bool is_bf16(float x) { return bf16_to_float(float_to_bf16(x)) == x; }

// The fp32 table is the float32 reference's; partial RoPE leaves the unturned pairs at cos 1, sin 0.
TEST(RopeTable, Float32AnglesAndPartialRope) {
  const RopeTable t = rope_table(300, 8, 4, 10000.0);
  ASSERT_EQ(t.cos.size(), 300u * 4);
  EXPECT_FLOAT_EQ(t.cos[299 * 4 + 0], static_cast<float>(std::cos(299.0)));
  EXPECT_FLOAT_EQ(t.sin[7 * 4 + 1], static_cast<float>(std::sin(7.0f * (1.0f / 100.0f))));
  for (int p : {0, 5, 299})
    for (int j : {2, 3}) {
      EXPECT_EQ(t.cos[p * 4 + j], 1.0f);
      EXPECT_EQ(t.sin[p * 4 + j], 0.0f);
    }
}

// bf16 as the baseline script's bf16 cast computes it: positions exact to 256, then in steps of 2
// (to 512), 4 (to 1,024), 8; every angle and value bf16.
TEST(RopeTable, Bf16RoundsPositionsAnglesAndValues) {
  const RopeTable f = rope_table(1100, 8, 8, 10000.0), b = rope_table(1100, 8, 8, 10000.0, RopeRounding::kBf16);
  for (size_t i = 0; i < b.cos.size(); ++i) ASSERT_TRUE(is_bf16(b.cos[i]) && is_bf16(b.sin[i])) << i;
  // Pair 0 turns at inv_freq 1: its angle is the rounded position.
  EXPECT_EQ(b.cos[256 * 4], b.cos[257 * 4]);     // 257 rounds to 256 (ties to even)
  EXPECT_NE(b.cos[255 * 4], b.cos[256 * 4]);
  EXPECT_EQ(b.sin[1026 * 4], b.sin[1024 * 4]);   // steps of 8 from 1,024: 1,026 rounds to 1,024
  EXPECT_NE(f.sin[1026 * 4], f.sin[1024 * 4]);
  const float exact = static_cast<float>(std::cos(200.0));
  EXPECT_EQ(b.cos[200 * 4], bf16_to_float(float_to_bf16(exact)));
  EXPECT_NE(b.cos[200 * 4], f.cos[200 * 4]);
  EXPECT_EQ(parse_rope_rounding("bf16"), RopeRounding::kBf16);
  EXPECT_EQ(parse_rope_rounding("bf16-compiled"), RopeRounding::kBf16Compiled);
  EXPECT_EQ(rope_rounding_name(RopeRounding::kBf16Compiled), "bf16-compiled");
  EXPECT_EQ(rope_rounding_name(parse_rope_rounding("fp32")), "fp32");
  EXPECT_THROW(parse_rope_rounding("fp16"), InputError);
}

// bf16-compiled as Inductor runs the script's table: inv_freq and the stored cos/sin bf16, the
// position and the angle exact in between (so 257 is not 256, unlike the eager table).
TEST(RopeTable, Bf16CompiledRoundsOnlyWhatIsStored) {
  const RopeTable c = rope_table(1100, 8, 8, 10000.0, RopeRounding::kBf16Compiled);
  const RopeTable b = rope_table(1100, 8, 8, 10000.0, RopeRounding::kBf16);
  for (size_t i = 0; i < c.cos.size(); ++i) ASSERT_TRUE(is_bf16(c.cos[i]) && is_bf16(c.sin[i])) << i;
  EXPECT_NE(c.cos[256 * 4], c.cos[257 * 4]);
  EXPECT_EQ(c.sin[1026 * 4], bf16_to_float(float_to_bf16(static_cast<float>(std::sin(1026.0)))));  // inv_freq 1
  EXPECT_NE(c.sin[1026 * 4], b.sin[1026 * 4]);
  // Pair 1: inv_freq = 10000^(-1/4) = 0.1 rounded to bf16 (0.10009765625), times the exact position.
  const float inv_freq = bf16_to_float(float_to_bf16(0.1f));
  EXPECT_EQ(c.cos[1000 * 4 + 1], bf16_to_float(float_to_bf16(static_cast<float>(std::cos(1000.0f * inv_freq)))));
}

}  // namespace
}  // namespace pgolf

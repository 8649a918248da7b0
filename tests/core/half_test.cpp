#include "core/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

namespace pgolf {
namespace {

// The compiler's own _Float16 conversion is the independent oracle for our fp16 rounding.
TEST(Half, Fp16RoundTripsEveryValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = fp16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {  // we keep NaN payloads bit for bit; the compiler quiets them
      EXPECT_EQ(float_to_fp16(f), h) << h;
      continue;
    }
    EXPECT_EQ(std::bit_cast<uint32_t>(f), std::bit_cast<uint32_t>(static_cast<float>(std::bit_cast<_Float16>(static_cast<uint16_t>(h)))))
        << h;
    EXPECT_EQ(float_to_fp16(f), h) << h;
  }
}

TEST(Half, Fp16RoundingMatchesCompiler) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    float f = std::bit_cast<float>(bits(rng));
    if (std::isnan(f)) continue;
    uint16_t expected = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    ASSERT_EQ(float_to_fp16(f), expected) << f;
  }
  // ties and boundaries
  for (float f : {65504.f, 65519.99f, 65520.f, 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 1.0009766f, 1.00048828125f}) {
    EXPECT_EQ(float_to_fp16(f), std::bit_cast<uint16_t>(static_cast<_Float16>(f))) << f;
    EXPECT_EQ(float_to_fp16(-f), std::bit_cast<uint16_t>(static_cast<_Float16>(-f))) << f;
  }
}

TEST(Half, Bf16RoundsToNearestEven) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1000000; ++i) {
    float f = std::bit_cast<float>(bits(rng));
    if (!std::isfinite(f)) continue;
    uint16_t b = float_to_bf16(f);
    double lo = bf16_to_float(static_cast<uint16_t>(std::bit_cast<uint32_t>(f) >> 16));
    double hi = bf16_to_float(static_cast<uint16_t>((std::bit_cast<uint32_t>(f) >> 16) + 1));
    double got = bf16_to_float(b);
    ASSERT_TRUE(got == lo || got == hi || std::isinf(got)) << f;
    double d_lo = std::fabs(f - lo), d_hi = std::fabs(hi - f);
    if (d_lo != d_hi && std::isfinite(got)) ASSERT_EQ(got, d_lo < d_hi ? lo : hi) << f;
    if (d_lo == d_hi) ASSERT_EQ(b & 1u, 0u) << f;
  }
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace pgolf

#include "codecs/byte_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

std::vector<uint8_t> sample_bytes(size_t n, uint64_t seed) {
  // int6-like symbols: compressible but not trivial
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 8);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(std::lround(normal(rng)), -31L, 31L)));
  return v;
}

class ByteCodecRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(ByteCodecRoundTrip, ExactOnEverySize) {
  auto codec = make_byte_codec(GetParam());
  EXPECT_EQ(make_byte_codec(codec->spec())->spec(), codec->spec());
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{1} << 20}) {
    auto raw = sample_bytes(n, n);
    auto enc = codec->encode(raw);
    EXPECT_EQ(codec->decode(enc, raw.size()), raw) << n;
    bool transform_only = codec->spec() == "none" || codec->spec().starts_with("shuffle:8");
    if (n >= 1000 && !transform_only) EXPECT_LT(enc.size(), raw.size()) << n;
    EXPECT_EQ(codec->encode(raw), enc) << "deterministic";
  }
}

TEST_P(ByteCodecRoundTrip, CorruptStreamsAreErrorsNotCrashes) {
  auto codec = make_byte_codec(GetParam());
  auto raw = sample_bytes(50000, 3);
  auto enc = codec->encode(raw);
  EXPECT_THROW(codec->decode(enc, raw.size() + 1), InputError);
  EXPECT_THROW(codec->decode(enc, size_t{1} << 40), InputError) << "a huge claimed size must fail before allocating";
  auto truncated = enc;
  truncated.resize(enc.size() / 2);
  EXPECT_THROW(codec->decode(truncated, raw.size()), InputError);
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    auto flipped = enc;
    flipped[rng() % flipped.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    try {
      auto out = codec->decode(flipped, raw.size());
      EXPECT_EQ(out.size(), raw.size());  // undetected by the codec: the artifact's crc catches it
    } catch (const InputError&) {
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, ByteCodecRoundTrip, ::testing::Values("zstd:1", "zstd:22", "zlib:1", "zlib:9", "none", "shuffle:2+zstd:3",
                                                                   "shuffle:4+zlib:6", "shuffle:8", "xz:0", "xz:9", "vrans",
                                                                   "shuffle:2+vrans"));

// Large inputs become several 4 MiB frames compressed in parallel; the bytes must not depend on it.
TEST(ByteCodec, ZstdLargeInputsAreChunkedDeterministically) {
  auto raw = sample_bytes((size_t{9} << 20) + 123, 11);
  auto codec = make_byte_codec("zstd:3");
  auto enc = codec->encode(raw);
  EXPECT_EQ(codec->decode(enc, raw.size()), raw);
  EXPECT_EQ(codec->encode(raw), enc);
  EXPECT_THROW(codec->decode(std::span(enc).first(enc.size() - 1), raw.size()), InputError);
  EXPECT_THROW(codec->decode(enc, raw.size() - 1), InputError);
}

TEST(ByteCodec, ZstdBeatsZlibOnSymbols) {
  auto raw = sample_bytes(1 << 20, 9);
  EXPECT_LT(make_byte_codec("zstd:22")->encode(raw).size(), make_byte_codec("zlib:9")->encode(raw).size());
}

// Byte grouping: bf16 weights compress much better with exponent and mantissa bytes apart.
TEST(ByteCodec, ShuffleGroupsBytesAndHelpsFloats) {
  auto shuffle = make_byte_codec("shuffle:4");
  std::vector<uint8_t> raw = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(shuffle->encode(raw), (std::vector<uint8_t>{1, 5, 2, 6, 3, 7, 4, 8, 9, 10}));
  auto w = test::synthetic(test::Distribution::Gaussian, 256, 1024, 4);
  std::vector<uint8_t> bf16(w.size() * 2);
  for (size_t i = 0; i < w.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &w[i], 4);
    bf16[2 * i] = static_cast<uint8_t>(u >> 16);
    bf16[2 * i + 1] = static_cast<uint8_t>(u >> 24);
  }
  size_t plain = make_byte_codec("zstd:19")->encode(bf16).size();
  size_t grouped = make_byte_codec("shuffle:2+zstd:19")->encode(bf16).size();
  EXPECT_LT(grouped, plain * 0.9) << plain << " vs " << grouped;
}

TEST(ByteCodec, UnknownOrBadSpecsAreErrors) {
  for (const char* bad : {"lzma", "zstd:0", "zstd:23", "zlib:10", "zlib:x", "none:1", "zstd:1+zlib:9", "", "shuffle",
                          "shuffle:3", "zstd:3+shuffle:2", "xz:10", "vrans:2", "vrans+zstd:3"})
    EXPECT_THROW(make_byte_codec(bad), InputError) << bad;
  try {
    make_byte_codec("brotli");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("zstd"), std::string::npos) << "the error lists what is known";
  }
}

}  // namespace
}  // namespace pgolf

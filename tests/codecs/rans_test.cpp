#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"

namespace pgolf {
namespace {

// Quantizer indices as the int-N codecs store them: int8 two's complement, clamped to +-31.
std::vector<uint8_t> int6_symbols(size_t n, double sigma, bool laplacian, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, sigma);
  std::exponential_distribution<double> exponential(std::sqrt(2.0) / sigma);  // Laplacian of std sigma
  std::bernoulli_distribution sign(0.5);
  std::vector<uint8_t> v(n);
  for (auto& b : v) {
    double value = laplacian ? (sign(rng) ? 1 : -1) * exponential(rng) : normal(rng);
    b = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(std::lround(value), -31L, 31L)));
  }
  return v;
}

std::vector<uint8_t> uniform_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

void expect_round_trip(const ByteCodec& codec, const std::vector<uint8_t>& raw) {
  auto encoded = codec.encode(raw);
  EXPECT_EQ(codec.decode(encoded, raw.size()), raw) << codec.spec() << ", " << raw.size() << " bytes";
  EXPECT_EQ(codec.encode(raw), encoded) << "deterministic";
}

TEST(Rans, SpecIsCanonicalAndParsesBack) {
  EXPECT_EQ(make_byte_codec("rans")->spec(), "rans:block=262144");
  EXPECT_EQ(make_byte_codec("rans:block=4096")->spec(), "rans:block=4096");
  EXPECT_EQ(make_byte_codec(make_byte_codec("rans:block=1")->spec())->spec(), "rans:block=1");
  auto names = byte_codec_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "rans"), names.end());
}

TEST(Rans, BadSpecsAreInputErrors) {
  for (const char* spec : {"rans:block=0", "rans:block=-1", "rans:block=abc", "rans:block=67108865", "rans:4096",
                           "rans:block=4096,block=8192", "rans:size=4096", "rans:block="})
    EXPECT_THROW(make_byte_codec(spec), InputError) << spec;
}

TEST(Rans, EdgeCasesRoundTrip) {
  auto codec = make_byte_codec("rans");
  expect_round_trip(*codec, {});
  EXPECT_TRUE(codec->encode({}).empty());
  expect_round_trip(*codec, {42});
  expect_round_trip(*codec, {0, 255});
  expect_round_trip(*codec, {1, 2, 3});  // fewer symbols than lanes

  std::vector<uint8_t> all_symbols(256);
  for (int s = 0; s < 256; ++s) all_symbols[s] = static_cast<uint8_t>(s);
  expect_round_trip(*codec, all_symbols);
  auto skewed = uniform_bytes(100000, 1);  // all 256 symbols, one of them at 99%
  for (size_t i = 0; i < skewed.size(); ++i)
    if (i % 100 != 0) skewed[i] = 7;
  expect_round_trip(*codec, skewed);
}

TEST(Rans, OneSymbolBlocksCostOnlyTheirTable) {
  auto codec = make_byte_codec("rans:block=65536");
  std::vector<uint8_t> raw(1 << 20, 0xE1);
  auto encoded = codec->encode(raw);
  EXPECT_EQ(encoded.size(), 16u * 4) << "16 blocks of (one run, its gap of 225 in two bytes, its length)";
  EXPECT_EQ(codec->decode(encoded, raw.size()), raw);
}

TEST(Rans, SizesAroundBlockBoundaries) {
  for (size_t block : {1, 2, 3, 5, 1000}) {
    auto codec = make_byte_codec("rans:block=" + std::to_string(block));
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, block - 1, block, block + 1, 2 * block - 1, 2 * block,
                     2 * block + 1, 3 * block + 3}) {
      expect_round_trip(*codec, int6_symbols(n, 4, false, n));
      expect_round_trip(*codec, uniform_bytes(n, n));
    }
  }
}

TEST(Rans, UniformBytesBarelyExpand) {
  auto codec = make_byte_codec("rans");
  auto raw = uniform_bytes(1 << 20, 2);
  auto encoded = codec->encode(raw);
  EXPECT_EQ(codec->decode(encoded, raw.size()), raw);
  // Per block: a table of 256 one- or two-byte frequencies, four 8-byte states, a few varints.
  EXPECT_LE(encoded.size(), raw.size() + 4 * 320);
}

TEST(Rans, GaussianAndLaplacianSymbolsCodeAtTheirEntropy) {
  auto codec = make_byte_codec("rans:block=1048576");  // one block: one table
  for (double sigma : {0.7, 2.0, 8.0})
    for (bool laplacian : {false, true}) {
      auto raw = int6_symbols(1 << 20, sigma, laplacian, 3);
      auto encoded = codec->encode(raw);
      ASSERT_EQ(codec->decode(encoded, raw.size()), raw);
      SymbolHistogram histogram;
      histogram.add(raw);
      double entropy = histogram.entropy_bytes();
      // The table is one frequency per present symbol (at most 63, two bytes each) plus 32 bytes of states.
      EXPECT_LT(static_cast<double>(encoded.size()), entropy * 1.002 + 160)
          << "sigma " << sigma << (laplacian ? " laplacian" : " gaussian") << ": " << encoded.size() << " vs entropy "
          << entropy;
    }
}

TEST(Rans, BeatsZstd22OnSymbols) {
  auto raw = int6_symbols(1 << 20, 8, false, 4);
  size_t rans = make_byte_codec("rans")->encode(raw).size();
  size_t zstd = make_byte_codec("zstd:22")->encode(raw).size();
  EXPECT_LT(rans, zstd);
  EXPECT_LT(static_cast<double>(rans), 0.995 * static_cast<double>(zstd)) << rans << " vs " << zstd;
}

TEST(Rans, WrongSizesAreInputErrors) {
  auto codec = make_byte_codec("rans:block=1000");
  auto raw = int6_symbols(5000, 8, false, 5);
  auto encoded = codec->encode(raw);
  EXPECT_THROW(codec->decode(encoded, raw.size() + 1), InputError);
  EXPECT_THROW(codec->decode(encoded, raw.size() - 1), InputError);
  EXPECT_THROW(codec->decode(encoded, 0), InputError);
  EXPECT_THROW(codec->decode({}, 1), InputError);
  EXPECT_THROW(codec->decode(encoded, size_t{1} << 40), InputError) << "a huge claimed size must fail before allocating";
}

// Hand-made blocks of 10 symbols, in the format rans_codec.cpp documents: runs of present
// symbols (count, then gap and length-1 per run), one frequency per symbol (summing to 4096),
// the word count, then the words.
TEST(Rans, MalformedTablesAreInputErrors) {
  auto codec = make_byte_codec("rans:block=1000");
  auto decode = [&](std::vector<uint8_t> encoded) { return codec->decode(encoded, 10); };
  EXPECT_THROW(decode({0, 0, 0}), InputError) << "no runs";
  EXPECT_THROW(decode({0x81, 0x01, 0, 0}), InputError) << "129 runs";
  EXPECT_THROW(decode({2, 0x7F, 0, 0x7F, 0x7F}), InputError) << "a run from 255 to 382";
  EXPECT_EQ(decode({1, 0x7F, 0}), std::vector<uint8_t>(10, 0x7F)) << "one symbol: no frequencies";
  EXPECT_THROW(decode({1, 0x7F, 0, 0}), InputError) << "one symbol and a stray byte";
  EXPECT_THROW(decode({1, 0, 1, 0x80, 0x10, 0xFF, 0x0F, 8}), InputError) << "frequencies 2048 + 2047";
  EXPECT_THROW(decode({1, 0, 1, 0x80, 0x20, 0, 8}), InputError) << "a frequency of 0";
  EXPECT_THROW(decode({1, 0, 1, 0x80, 0x10, 0x81, 0x10, 8}), InputError) << "frequencies past the total";
  EXPECT_THROW(decode({1, 0, 1, 0x80, 0x10, 0x80, 0x10, 100, 0, 0, 0, 0}), InputError) << "words past the end";
  EXPECT_THROW(decode({1, 0, 1, 0x80, 0x10, 0x80, 0x10, 1, 0, 0, 0, 0x80}), InputError) << "fewer words than states";
  std::vector<uint8_t> zero_states = {1, 0, 1, 0x80, 0x10, 0x80, 0x10, 8};
  zero_states.resize(zero_states.size() + 32);
  EXPECT_THROW(decode(zero_states), InputError) << "states below 2^31";

  std::vector<uint8_t> raw(1000);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = i % 3 == 0;
  const auto encoded = codec->encode(raw);
  auto last_word_flipped = encoded;
  last_word_flipped.back() ^= 0x10;
  EXPECT_THROW(codec->decode(last_word_flipped, raw.size()), InputError) << "final states wrong";
  auto truncated = encoded;
  truncated.pop_back();
  EXPECT_THROW(codec->decode(truncated, raw.size()), InputError);
  auto extended = encoded;
  extended.push_back(0);
  EXPECT_THROW(codec->decode(extended, raw.size()), InputError);
}

// Random damage must give an InputError or an output of the right size, never a crash
// (run under -DPGOLF_SANITIZE=address,undefined to check reads and writes).
TEST(Rans, RandomDamageIsAnErrorNotACrash) {
  std::mt19937_64 rng(6);
  int errors = 0, trials = 0;
  const std::pair<const char*, std::vector<uint8_t>> cases[] = {
      {"rans", int6_symbols(20000, 3, false, 7)},
      {"rans:block=1000", uniform_bytes(3000, 8)},
      {"rans:block=1000", int6_symbols(3001, 0.3, true, 9)},
      {"rans:block=7", int6_symbols(200, 3, false, 10)},
  };
  for (const auto& [spec, raw] : cases) {
    auto codec = make_byte_codec(spec);
    const auto encoded = codec->encode(raw);
    for (int i = 0; i < 1500; ++i, ++trials) {
      auto damaged = encoded;
      switch (i % 4) {
        case 0:  // one flipped bit
          damaged[rng() % damaged.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:  // a few random bytes
          for (int k = 0; k < 3; ++k) damaged[rng() % damaged.size()] = static_cast<uint8_t>(rng());
          break;
        case 2:  // truncated
          damaged.resize(rng() % damaged.size());
          break;
        case 3:  // random garbage of a random length
          damaged = uniform_bytes(rng() % 64, rng());
          break;
      }
      size_t raw_size = i % 8 == 7 ? rng() % (2 * raw.size()) : raw.size();
      try {
        EXPECT_EQ(codec->decode(damaged, raw_size).size(), raw_size);
      } catch (const InputError&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, trials * 9 / 10) << "the decoder's checks catch most damage";
}

}  // namespace
}  // namespace pgolf

namespace pgolf {
namespace {

// vrans: the lane layout numpy decodes. Blocks of one value, several tables, a short last step and
// uniform bytes all round-trip; but for its lanes' 4-byte states, it codes within 0.1% of rans;
// damage anywhere is refused.
TEST(Vrans, RoundTripsAndCodesWithinATenthOfAPercentOfRansButItsStates) {
  auto raw = int6_symbols(700000, 4.0, true, 21);
  raw.insert(raw.end(), size_t{300000}, uint8_t{7});  // a whole block (and then some) of one value
  auto tail = int6_symbols(12345, 1.5, false, 22);     // a last step shorter than the lanes
  raw.insert(raw.end(), tail.begin(), tail.end());
  const auto vrans = make_byte_codec("vrans");
  for (size_t n : {size_t{0}, size_t{1}, size_t{4097}, raw.size()})
    expect_round_trip(*vrans, std::vector<uint8_t>(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(n)));
  expect_round_trip(*vrans, uniform_bytes(100000, 23));
  const double rans = static_cast<double>(make_byte_codec("rans")->encode(raw).size());
  const auto encoded = vrans->encode(raw);
  const double lanes = 1024;  // raw.size() / 512, at most 1,024
  ASSERT_EQ((encoded[0] & 0x7f) | encoded[1] << 7, lanes) << "the lane count, a varint";
  const double states = 4 * lanes;
  EXPECT_LT(static_cast<double>(encoded.size()) - states, rans * 1.001) << encoded.size() << " vs " << rans;
}

TEST(Vrans, DamageIsAnErrorNotACrash) {
  const auto raw = int6_symbols(50000, 3.0, false, 24);
  const auto vrans = make_byte_codec("vrans");
  const auto encoded = vrans->encode(raw);
  EXPECT_THROW(vrans->decode(std::span(encoded).first(encoded.size() - 2), raw.size()), InputError);
  EXPECT_THROW(vrans->decode(encoded, raw.size() + 1), InputError);
  EXPECT_THROW(vrans->decode(encoded, size_t{1} << 40), InputError) << "a huge claimed size must fail before allocating";
  auto lanes = encoded;
  lanes[0] = 3;  // not a power of two
  EXPECT_THROW(vrans->decode(lanes, raw.size()), InputError);
  auto last = encoded;
  last.back() ^= 0x40;  // the first word read: the states then cannot all end where they started
  EXPECT_THROW(vrans->decode(last, raw.size()), InputError);
}

}  // namespace
}  // namespace pgolf

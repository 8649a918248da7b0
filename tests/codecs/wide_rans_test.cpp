// rans:width=2 (16-bit symbols with a table and escapes) and auto (the smallest of rans, zstd:22,
// zlib:9, naming its choice).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"

namespace pgolf {
namespace {

// Rounded Laplacian values of scale b as 16-bit little-endian two's complement, plus `outliers`
// uniform values over the whole 16-bit range.
std::vector<uint8_t> wide_symbols(size_t n, double b, size_t outliers, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> exponential(1 / b);
  std::vector<uint8_t> v(2 * n);
  for (size_t i = 0; i < n; ++i) {
    double x = (rng() & 1 ? 1 : -1) * exponential(rng);
    auto q = static_cast<uint16_t>(static_cast<int16_t>(std::clamp(std::lround(x), -32767L, 32767L)));
    if (i % (n / (outliers + 1) + 1) == 1 && outliers) q = static_cast<uint16_t>(rng());
    v[2 * i] = static_cast<uint8_t>(q), v[2 * i + 1] = static_cast<uint8_t>(q >> 8);
  }
  return v;
}

double entropy16_bytes(const std::vector<uint8_t>& v) {
  SymbolHistogram h(2);
  h.add(v);
  return h.entropy_bytes();
}

void expect_round_trip(const ByteCodec& codec, const std::vector<uint8_t>& raw) {
  auto encoded = codec.encode(raw);
  EXPECT_EQ(codec.decode(encoded, raw.size()), raw) << codec.spec() << ", " << raw.size() << " bytes";
}

TEST(WideRans, SpecsAndBadSpecs) {
  EXPECT_EQ(make_byte_codec("rans:width=2")->spec(), "rans:block=262144,width=2");
  EXPECT_EQ(make_byte_codec("rans:width=1")->spec(), "rans:block=262144");
  EXPECT_EQ(make_byte_codec("rans")->spec_for_symbols(2), "rans:block=262144,width=2");
  EXPECT_EQ(make_byte_codec("rans:block=7")->spec_for_symbols(2), "shuffle:2+rans:block=7") << "odd blocks cannot hold whole symbols";
  EXPECT_EQ(make_byte_codec("zstd:22")->spec_for_symbols(2), "shuffle:2+zstd:22");
  EXPECT_EQ(make_byte_codec("auto")->spec_for_symbols(2), "auto:width=2");
  for (const char* spec : {"rans:width=3", "rans:width=0", "rans:block=5,width=2", "auto:width=3", "auto:9", "auto:level=3"})
    EXPECT_THROW(make_byte_codec(spec), InputError) << spec;
  EXPECT_THROW(make_byte_codec("rans:width=2")->encode(std::vector<uint8_t>(3)), InputError) << "half a symbol";
  EXPECT_THROW(make_byte_codec("rans:width=2")->decode(std::vector<uint8_t>(8), 3), InputError);
}

TEST(WideRans, RoundTripsEdgeCasesAndBlockBoundaries) {
  for (const char* spec : {"rans:width=2", "rans:block=6,width=2", "rans:block=1000,width=2"}) {
    auto codec = make_byte_codec(spec);
    expect_round_trip(*codec, {});
    expect_round_trip(*codec, {0x34, 0x12});
    expect_round_trip(*codec, {0x34, 0x12, 0x34, 0x12, 0xFF, 0xFF});
    for (size_t n : {1, 2, 3, 4, 5, 499, 500, 501, 1001, 5000})
      for (size_t outliers : {size_t{0}, size_t{3}, n}) expect_round_trip(*codec, wide_symbols(n, 20, outliers, n + outliers));
  }
  std::vector<uint8_t> every_value(2 * 65536);
  for (uint32_t v = 0; v < 65536; ++v) every_value[2 * v] = static_cast<uint8_t>(v), every_value[2 * v + 1] = static_cast<uint8_t>(v >> 8);
  expect_round_trip(*make_byte_codec("rans:width=2"), every_value);  // every value escaped
  expect_round_trip(*make_byte_codec("rans:block=131072,width=2"), every_value);
}

TEST(WideRans, CodesNearTheEntropyAndBeatsBytePlanes) {
  auto wide = make_byte_codec("rans:block=4194304,width=2");  // one block
  for (double b : {3.0, 30.0, 100.0}) {
    auto raw = wide_symbols(1 << 20, b, 50, 11);
    auto encoded = wide->encode(raw);
    ASSERT_EQ(wide->decode(encoded, raw.size()), raw);
    double entropy = entropy16_bytes(raw);
    // Escapes cost their 16 raw bits; the table a few bytes per value.
    EXPECT_LT(static_cast<double>(encoded.size()), entropy * 1.01 + 4000) << "scale " << b;
    size_t planes = make_byte_codec("shuffle:2+rans")->encode(raw).size();
    EXPECT_LT(encoded.size(), planes) << "scale " << b;
  }
}

TEST(WideRans, MalformedBlocksAreInputErrors) {
  auto codec = make_byte_codec("rans:block=1000,width=2");
  auto decode = [&](std::vector<uint8_t> encoded) { return codec->decode(encoded, 10); };  // 5 symbols
  EXPECT_EQ(decode({1, 0x34, 0, 0}), std::vector<uint8_t>({0x34, 0, 0x34, 0, 0x34, 0, 0x34, 0, 0x34, 0})) << "one value";
  EXPECT_EQ(decode({0, 5, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}), std::vector<uint8_t>({1, 2, 1, 2, 1, 2, 1, 2, 1, 2})) << "all escaped";
  EXPECT_THROW(decode({0, 0, 0}), InputError) << "an empty table";
  EXPECT_THROW(decode({0, 6, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}), InputError) << "more escapes than symbols";
  EXPECT_THROW(decode({0, 5, 1, 2, 1, 2}), InputError) << "escaped values missing";
  EXPECT_THROW(decode({1, 0x80, 0x80, 0x04, 0, 0}), InputError) << "a value past 65535";
  EXPECT_THROW(decode({1, 0, 0x80, 0x80, 0x01, 0, 0, 0}), InputError) << "a table larger than the slots";
  EXPECT_THROW(decode({1, 0x34, 0, 0, 0}), InputError) << "a stray byte";

  std::mt19937_64 rng(12);
  auto raw = wide_symbols(3000, 40, 20, 13);
  const auto encoded = codec->encode(raw);
  int errors = 0, trials = 3000;
  for (int i = 0; i < trials; ++i) {
    auto damaged = encoded;
    if (i % 3 == 0)
      damaged.resize(rng() % damaged.size());
    else
      for (int k = 0; k < 1 + i % 3; ++k) damaged[rng() % damaged.size()] = static_cast<uint8_t>(rng());
    try {
      EXPECT_EQ(codec->decode(damaged, raw.size()).size(), raw.size());
    } catch (const InputError&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, trials * 8 / 10);
}

TEST(Auto, PicksTheSmallestAndNamesIt) {
  auto codec = make_byte_codec("auto");
  EXPECT_EQ(codec->spec(), "auto");
  std::vector<uint8_t> repetitive;
  for (int i = 0; i < 100000; ++i) repetitive.push_back(static_cast<uint8_t>("abcdefgh"[i % 8]));
  auto [name, bytes] = codec->encode_named(repetitive);
  EXPECT_TRUE(name.starts_with("zstd") || name.starts_with("zlib")) << name << ": order-0 rans cannot see repeats";
  EXPECT_EQ(make_byte_codec(name)->decode(bytes, repetitive.size()), repetitive);

  auto symbols = wide_symbols(100000, 5, 0, 14);
  std::vector<uint8_t> low(symbols.size() / 2);
  for (size_t i = 0; i < low.size(); ++i) low[i] = symbols[2 * i];
  std::tie(name, bytes) = codec->encode_named(low);
  EXPECT_TRUE(name.starts_with("rans")) << name;
  for (const auto& raw : {repetitive, low}) {
    auto tagged = codec->encode(raw);
    EXPECT_EQ(codec->decode(tagged, raw.size()), raw);
    EXPECT_EQ(tagged.size(), codec->encode_named(raw).second.size() + 1);
  }
  std::tie(name, bytes) = make_byte_codec("shuffle:2+auto")->encode_named(symbols);
  EXPECT_TRUE(name.starts_with("shuffle:2+")) << name;
  EXPECT_EQ(make_byte_codec(name)->decode(bytes, symbols.size()), symbols);
  EXPECT_THROW(codec->decode({}, 1), InputError);
  EXPECT_THROW(codec->decode(std::vector<uint8_t>{7, 0}, 1), InputError);
}

TEST(Rotate, RoundTripsEveryWidthAndPutsTheExponentOnTop) {
  for (const char* spec : {"rotate:2", "rotate:4", "rotate:8"}) {
    auto codec = make_byte_codec(spec);
    for (size_t n : {0, 1, 3, 7, 8, 1001}) {
      std::mt19937_64 rng(n);
      std::vector<uint8_t> raw(n);
      for (auto& b : raw) b = static_cast<uint8_t>(rng());
      expect_round_trip(*codec, raw);
    }
    EXPECT_THROW(codec->decode(std::vector<uint8_t>(8), 9), InputError);
  }
  auto rotated = make_byte_codec("rotate:4")->encode(std::vector<uint8_t>{0, 0, 0x80, 0xBF});  // -1.0f: sign 1, exponent 127
  EXPECT_EQ(rotated, std::vector<uint8_t>({1, 0, 0, 0x7F}));
  for (const char* spec : {"rotate", "rotate:3", "rotate:2,4"}) EXPECT_THROW(make_byte_codec(spec), InputError) << spec;
}

}  // namespace
}  // namespace pgolf

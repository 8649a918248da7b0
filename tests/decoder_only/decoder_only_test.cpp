// The decoder-only build: this binary links pgolf_decoder (the artifact reader and every codec's
// decoder) and the checkpoint reader, and no encoder, fit step or Eigen; it builds only while that
// holds. It decodes the kept fixtures (tests/fixtures/artifacts: one tensor per decoder spec, under
// each byte codec family, made by an earlier pgolf) bit for bit as pgolf decompress did when they
// were made, so a later reader that decodes an old artifact differently fails here.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "artifact/reader.h"
#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace pgolf {
namespace {

std::string fixture(const std::string& name) { return std::string(PGOLF_SOURCE_DIR) + "/tests/fixtures/artifacts/v1/" + name; }

std::vector<std::string> fixture_specs() {
  std::ifstream in(fixture("every_decoder.specs"));
  std::vector<std::string> specs;
  for (std::string line; std::getline(in, line);) specs.push_back(line);
  return specs;
}

class EveryByteCodec : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryByteCodec, DecodesTheFixtureAsPgolfDecompressDid) {
  const DecodedArtifact decoded = decode_artifact_file(fixture("every_decoder." + GetParam() + ".pgz"));
  const Checkpoint expected = Checkpoint::open({fixture("every_decoder.expected.safetensors")});
  const std::vector<std::string> specs = fixture_specs();
  ASSERT_EQ(specs.size(), 22u);
  ASSERT_EQ(decoded.tensors.size(), specs.size() + 1);  // and the raw int64 one
  for (const DecodedTensor& t : decoded.tensors) {
    SCOPED_TRACE(t.name + " " + t.codec);
    const TensorRef& want = expected.at(t.name);
    EXPECT_EQ(t.shape, want.shape);
    if (t.codec == kRawSpec) {
      EXPECT_EQ(t.dtype, DType::I64);
      EXPECT_TRUE(std::equal(t.raw.begin(), t.raw.end(), want.bytes.begin(), want.bytes.end()));
      continue;
    }
    EXPECT_EQ(t.codec, specs.at(std::stoul(t.name.substr(1))));
    ASSERT_EQ(want.dtype, DType::F32);
    ASSERT_EQ(want.bytes.size(), 4 * t.values.size());
    EXPECT_EQ(std::memcmp(want.bytes.data(), t.values.data(), want.bytes.size()), 0) << "values differ";
  }
  // Every byte codec family is there: the groups' decoders name it.
  bool named = false;
  for (const auto& g : decoded.manifest.groups) named = named || g.codec.find(GetParam()) != std::string::npos;
  EXPECT_TRUE(named);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EveryByteCodec, ::testing::Values("zstd", "zlib", "rans"));

TEST(DecoderOnly, RefusesDamagedArtifacts) {
  auto map = MappedFile::open(fixture("every_decoder.rans.pgz"));
  const std::vector<uint8_t> good(map->bytes().begin(), map->bytes().end());
  std::vector<uint8_t> cut(good.begin(), good.end() - 1);
  EXPECT_THROW(decode_artifact(cut, "cut"), InputError);
  // A flipped bit anywhere is caught (checksums, then the decoders' own checks).
  for (size_t at : {size_t{3}, size_t{10}, size_t{40}, good.size() / 2, good.size() - 1}) {
    std::vector<uint8_t> flipped = good;
    flipped[at] ^= 0x10;
    EXPECT_THROW(decode_artifact(flipped, "flipped"), InputError) << "byte " << at;
  }
}

}  // namespace
}  // namespace pgolf

// The decoder-only build: this binary links pgolf_decoder (the artifact reader and every codec's
// decoder) and the checkpoint reader, and no encoder, fit step or Eigen; it builds only while that
// holds. It decodes the kept fixtures (tests/fixtures/artifacts: one tensor per decoder spec, under
// each byte codec family, made by an earlier pgolf) bit for bit as pgolf decompress did when they
// were made, so a later reader that decodes an old artifact differently fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "artifact/reader.h"
#include "checkpoint/safetensors.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace pgolf {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(PGOLF_SOURCE_DIR) / "tests/fixtures/artifacts";

// Every kept artifact: vN/every_decoder.COMPRESSOR.pgz, one per format version and byte codec family.
std::vector<std::string> every_fixture() {
  std::vector<std::string> paths;
  for (const auto& version : std::filesystem::directory_iterator(kFixtures))
    if (version.is_directory())
      for (const auto& file : std::filesystem::directory_iterator(version.path()))
        if (file.path().extension() == ".pgz") paths.push_back(file.path().lexically_relative(kFixtures).string());
  std::sort(paths.begin(), paths.end());
  return paths;
}

std::vector<std::string> fixture_specs(const std::filesystem::path& folder) {
  std::ifstream in(folder / "every_decoder.specs");
  std::vector<std::string> specs;
  for (std::string line; std::getline(in, line);) specs.push_back(line);
  return specs;
}

class EveryFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFixture, DecodesAsPgolfDecompressDid) {
  const std::filesystem::path path = kFixtures / GetParam();
  const DecodedArtifact decoded = decode_artifact_file(path.string());
  const Checkpoint expected = Checkpoint::open({(path.parent_path() / "every_decoder.expected.safetensors").string()});
  const std::vector<std::string> specs = fixture_specs(path.parent_path());
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
  // The byte codec family its name says: the groups' decoders name it.
  const std::string family = path.stem().extension().string().substr(1);
  bool named = false;
  for (const auto& g : decoded.manifest.groups) named = named || g.codec.starts_with(family) || g.codec.find("+" + family) != std::string::npos;
  EXPECT_TRUE(named) << family;
  EXPECT_EQ("v" + std::to_string(decoded.manifest.version), path.parent_path().filename().string());
}

TEST(DecoderOnly, KeepsFixturesOfEveryFormatVersion) {
  const auto fixtures = every_fixture();
  for (uint32_t version = 1; version <= kArtifactVersion; ++version)
    EXPECT_TRUE(std::any_of(fixtures.begin(), fixtures.end(),
                            [&](const std::string& f) { return f.starts_with("v" + std::to_string(version) + "/"); }))
        << "no kept artifact of format version " << version << ": tests/fixtures/artifacts/make_fixtures.sh";
}

INSTANTIATE_TEST_SUITE_P(Kept, EveryFixture, ::testing::ValuesIn(every_fixture()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char c : info.param) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(DecoderOnly, RefusesDamagedArtifacts) {
  auto map = MappedFile::open((kFixtures / "v2/every_decoder.rans.pgz").string());
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

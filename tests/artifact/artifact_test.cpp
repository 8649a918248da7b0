#include "artifact/artifact.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "artifact/load.h"
#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "core/checksum.h"
#include "core/error.h"
#include "plan/plan.h"
#include "quant/tensor_codec.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

const Checkpoint& base9() {
  static const Checkpoint ckpt = Checkpoint::open({test::sample_path("base9")});
  return ckpt;
}

CompressResult compress(const Checkpoint& ckpt, const std::string& codec, const std::string& compressor = "zstd:1",
                        std::vector<std::string> rules = {}, unsigned threads = 0) {
  return compress_checkpoint(ckpt, Plan(codec, rules).specs_for(ckpt), *make_byte_codec(compressor), {threads, nullptr});
}

// decode(compress(x)) equals the codec's own dequantized values bit for bit, for every spec.
TEST(Artifact, DecodesToExactlyTheCodecsValues) {
  const auto& ckpt = base9();
  Plan default_plan("int6", {});
  for (const char* spec : {"int2", "int4", "int5:clip=quantile:0.9999", "int6", "int6:clip=std:12.85", "int8",
                           "int8:clip=mse", "fp16", "bf16", "fp32"}) {
    auto result = compress(ckpt, spec);
    auto decoded = decode_artifact(result.bytes, "mem.pgz");
    ASSERT_EQ(decoded.tensors.size(), ckpt.tensors().size());
    Plan plan(spec, {});
    for (size_t i = 0; i < decoded.tensors.size(); ++i) {
      const auto& ref = ckpt.tensors()[i];
      const auto& got = decoded.tensors[i];
      ASSERT_EQ(got.name, ref.name);
      ASSERT_EQ(got.shape, ref.shape);
      ASSERT_EQ(got.dtype, ref.dtype);
      std::string codec_spec = plan.codec_for(ref.name, ref.dtype, ref.shape);
      ASSERT_EQ(got.codec, codec_spec);
      auto codec = make_tensor_codec(codec_spec);
      auto expected = decode_streams(*codec, codec->encode(ref.to_floats(), TensorShape{ref.shape}), TensorShape{ref.shape});
      ASSERT_EQ(0, std::memcmp(expected.data(), got.values.data(), expected.size() * 4)) << spec << " " << ref.name;
    }
    EXPECT_EQ(decoded.manifest.metadata, ckpt.metadata());
  }
}

TEST(Artifact, DeterministicAcrossRunsAndThreadCounts) {
  auto a = compress(base9(), "int6", "zstd:3", {}, 1);
  auto b = compress(base9(), "int6", "zstd:3", {}, 2);
  EXPECT_EQ(a.bytes, b.bytes);
}

TEST(Artifact, Int6ReportsMatchReferenceAndGroupsShareStreams) {
  auto r = compress(base9(), "int6", "zstd:3");
  Distortion quantized;
  size_t quantized_tensors = 0;
  for (const auto& t : r.tensors)
    if (t.quantized) quantized.add(t.distortion), ++quantized_tensors;
  EXPECT_EQ(quantized_tensors, 55u) << "54 block matrices and tok_emb";
  EXPECT_LT(quantized.relative_mse(), 9.6e-4);
  EXPECT_GT(quantized.relative_mse(), 9.0e-4);
  std::vector<std::string> groups;
  for (const auto& g : r.manifest.groups) groups.push_back(g.name);
  // base9's small tensors are all control tensors (fp32)
  EXPECT_EQ(groups, (std::vector<std::string>{"int6", "scale.fp16", "fp32"}));
}

TEST(Artifact, RawTensorsAndNonFloatTypesRoundTripExactly) {
  test::TempDir dir;
  std::vector<TensorData> tensors;
  std::vector<int64_t> ints = {1, -2, 1LL << 40};
  TensorData steps{"steps", DType::I64, {3}, std::vector<uint8_t>(24)};
  std::memcpy(steps.bytes.data(), ints.data(), 24);
  tensors.push_back(steps);
  auto w = test::synthetic(test::Distribution::Gaussian, 300, 300, 1);
  tensors.push_back({"w", DType::F32, {300, 300}, from_float(DType::F32, w)});
  tensors.push_back({"flag", DType::BOOL, {2}, {1, 0}});
  write_safetensors(dir.file("m.safetensors"), tensors, {{"k", "v"}}, false);
  auto ckpt = Checkpoint::open({dir.file("m.safetensors")});
  auto r = compress(ckpt, "int8", "zlib:9", {"^w$=raw"});
  auto d = decode_artifact(r.bytes, "m.pgz");
  ASSERT_EQ(d.tensors.size(), 3u);
  EXPECT_EQ(d.tensors[0].name, "flag");
  EXPECT_EQ(d.tensors[0].raw, tensors[2].bytes);
  EXPECT_EQ(d.tensors[1].raw, steps.bytes);
  EXPECT_EQ(d.tensors[1].dtype, DType::I64);
  EXPECT_EQ(d.tensors[2].raw, tensors[1].bytes);
  EXPECT_EQ(d.manifest.metadata.at("k"), "v");
}

TEST(Artifact, NonFiniteWeightsAreRefusedNamingTheTensor) {
  test::TempDir dir;
  auto w = test::synthetic(test::Distribution::Gaussian, 300, 300, 1);
  w[777] = std::nanf("");
  write_safetensors(dir.file("m.safetensors"), {{"layer.w", DType::F32, {300, 300}, from_float(DType::F32, w)}}, {}, false);
  try {
    compress(Checkpoint::open({dir.file("m.safetensors")}), "int6");
    FAIL() << "expected an error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("layer.w"), std::string::npos) << e.what();
  }
}

// --- malformed artifacts: each is a clear InputError, never a crash or garbage weights ---

std::vector<uint8_t> small_artifact() {
  static const std::vector<uint8_t> bytes = [] {
    test::TempDir dir;
    auto w = test::synthetic(test::Distribution::Laplacian, 320, 256, 8);
    auto v = test::synthetic(test::Distribution::Gaussian, 64, 1, 9);
    write_safetensors(dir.file("m.safetensors"),
                      {{"a.weight", DType::F32, {320, 256}, from_float(DType::F32, w)},
                       {"b.bias", DType::BF16, {64}, from_float(DType::BF16, v)}},
                      {}, false);
    return compress(Checkpoint::open({dir.file("m.safetensors")}), "int6", "zstd:3").bytes;
  }();
  return bytes;
}

// Rewrites the manifest JSON of an artifact (keeping checksums valid), to forge well-formed
// files with malicious content.
std::vector<uint8_t> with_manifest(const std::vector<uint8_t>& artifact, const std::function<void(nlohmann::json&)>& edit) {
  uint32_t raw_size, stored_size;
  std::memcpy(&raw_size, artifact.data() + 12, 4);
  std::memcpy(&stored_size, artifact.data() + 16, 4);
  auto manifest = make_byte_codec(manifest_codec(kArtifactVersion));
  auto raw = manifest->decode(std::span(artifact).subspan(24, stored_size), raw_size);
  auto j = nlohmann::json::parse(raw.begin(), raw.end());
  edit(j);
  std::string text = j.dump();
  auto stored = manifest->encode(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  std::vector<uint8_t> out(artifact.begin(), artifact.begin() + 8);
  auto put = [&](uint32_t v) { out.insert(out.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); };
  put(kArtifactVersion);
  put(static_cast<uint32_t>(text.size()));
  put(static_cast<uint32_t>(stored.size()));
  put(crc32_of(stored));
  out.insert(out.end(), stored.begin(), stored.end());
  out.insert(out.end(), artifact.begin() + 24 + stored_size, artifact.end());
  return out;
}

void expect_input_error(const std::vector<uint8_t>& bytes, const std::string& why) {
  try {
    decode_artifact(bytes, "bad.pgz");
    ADD_FAILURE() << why << ": decoded without error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pgz"), std::string::npos) << why << ": " << e.what();
  }
}

TEST(ArtifactMalformed, ForgedManifestsAreRefused) {
  auto good = small_artifact();
  ASSERT_NO_THROW(decode_artifact(with_manifest(good, [](auto&) {}), "ok.pgz"));
  using J = nlohmann::json;
  std::vector<std::pair<std::string, std::function<void(J&)>>> cases = {
      {"stream past its group", [](J& j) { j["tensors"][0]["streams"][0][1] = 1u << 30; }},
      {"stream size overflow", [](J& j) { j["tensors"][0]["streams"][0][2] = ~uint64_t{0}; }},
      {"missing group", [](J& j) { j["tensors"][0]["streams"][0][0] = 99; }},
      {"unknown codec", [](J& j) { j["tensors"][0]["codec"] = "int42"; }},
      {"unknown dtype", [](J& j) { j["tensors"][0]["dtype"] = "F8"; }},
      {"shape does not match streams", [](J& j) { j["tensors"][0]["shape"] = {320, 255}; }},
      {"huge shape", [](J& j) { j["tensors"][0]["shape"] = {1LL << 40, 1LL << 40}; }},
      {"negative shape", [](J& j) { j["tensors"][0]["shape"] = {-1, 256}; }},
      {"duplicate names", [](J& j) { j["tensors"][1]["name"] = j["tensors"][0]["name"]; }},
      {"missing field", [](J& j) { j["tensors"][0].erase("codec"); }},
      {"wrong field type", [](J& j) { j["groups"][0]["raw_size"] = "big"; }},
      {"group size lies", [](J& j) { j["groups"][0]["raw_size"] = j["groups"][0]["raw_size"].get<uint64_t>() + 1; }},
      {"group stored size lies", [](J& j) { j["groups"][0]["stored_size"] = j["groups"][0]["stored_size"].get<uint64_t>() - 1; }},
      {"unknown byte codec", [](J& j) { j["groups"][0]["codec"] = "lzma"; }},
      {"wrong byte codec", [](J& j) { j["groups"][0]["codec"] = "zlib:9"; }},
      {"not a pgolf manifest", [](J& j) { j["format"] = "other"; }},
      {"metadata not strings", [](J& j) { j["metadata"] = {{"a", 1}}; }},
      // found by fuzz/artifact: a float too large for the field was converted (undefined behaviour)
      {"checksum a huge float", [](J& j) { j["groups"][0]["raw_crc32"] = 3.4e37; }},
      {"size a fraction", [](J& j) { j["groups"][0]["stored_size"] = 12.5; }},
      {"size negative", [](J& j) { j["groups"][0]["raw_size"] = -1; }},
      {"checksum past 32 bits", [](J& j) { j["groups"][0]["stored_crc32"] = uint64_t{1} << 32; }},
      {"dimension a huge float", [](J& j) { j["tensors"][0]["shape"] = {1e30, 1}; }},
      {"shape not an array", [](J& j) { j["tensors"][0]["shape"] = 320; }},
      {"stream offset a float", [](J& j) { j["tensors"][0]["streams"][0][1] = 1e300; }},
      // what the writers never make: safetensors' reserved name, an int6 tensor claiming I64, two
      // tensors decoding the same bytes (b.bias from a.weight's first 64 scales)
      {"a tensor named __metadata__", [](J& j) { j["tensors"][0]["name"] = "__metadata__"; }},
      {"a quantized tensor claiming I64", [](J& j) { j["tensors"][0]["dtype"] = "I64"; }},
      {"two tensors sharing a stream", [](J& j) { j["tensors"][1]["streams"][0] = {j["tensors"][0]["streams"][1][0], 0, 128}; }},
  };
  for (const auto& [why, edit] : cases) expect_input_error(with_manifest(good, edit), why);
}

// A low-rank tensor decodes from its factors alone, so a forged shape would make a tiny file
// allocate terabytes before any stream is checked: the file size caps the declared elements.
TEST(ArtifactMalformed, DeclaredElementsAreCappedByTheFileSize) {
  test::TempDir dir;
  auto w = test::synthetic(test::Distribution::Gaussian, 320, 256, 10);
  write_safetensors(dir.file("m.safetensors"), {{"a.weight", DType::F32, {320, 256}, from_float(DType::F32, w)}}, {},
                    false);
  auto good = compress(Checkpoint::open({dir.file("m.safetensors")}), "lowrank:rank=1+int8", "zstd:3").bytes;
  ASSERT_NO_THROW(decode_artifact(good, "ok.pgz"));
  auto forged = with_manifest(good, [](nlohmann::json& j) { j["tensors"][0]["shape"] = {1LL << 20, 1LL << 19}; });
  try {
    decode_artifact(forged, "bad.pgz");
    ADD_FAILURE() << "a " << forged.size() << "-byte artifact declaring 2^39 elements decoded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("elements"), std::string::npos) << e.what();
  }
}

TEST(ArtifactMalformed, DamagedFilesAreRefused) {
  auto good = small_artifact();
  ASSERT_NO_THROW(decode_artifact(good, "ok.pgz"));
  expect_input_error({}, "empty file");
  expect_input_error(std::vector<uint8_t>(good.begin(), good.begin() + 10), "cut inside the header");
  for (size_t cut : {size_t{24}, size_t{40}, good.size() / 2, good.size() - 1})
    expect_input_error(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)), "truncated");
  auto longer = good;
  longer.push_back(0);
  expect_input_error(longer, "trailing bytes");
  auto magic = good;
  magic[1] = 'X';
  expect_input_error(magic, "bad magic");
  auto version = good;
  version[8] = kArtifactVersion + 1;
  expect_input_error(version, "future version");
  // every single flipped bit after the header is caught by a checksum or a structural check
  std::mt19937 rng(1);
  for (int i = 0; i < 300; ++i) {
    auto flipped = good;
    size_t at = 8 + rng() % (good.size() - 8);
    flipped[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    expect_input_error(flipped, "flipped bit at " + std::to_string(at));
  }
}

TEST(ArtifactLoad, LoadsFloatsFromArtifactsAndCheckpoints) {
  test::TempDir dir;
  auto r = compress(base9(), "int8");
  test::write_bytes(dir.file("b.pgz"), r.bytes);
  auto from_artifact = load_float_tensors({dir.file("b.pgz")});
  auto from_checkpoint = load_float_tensors({test::sample_path("base9")});
  ASSERT_EQ(from_artifact.size(), 92u);
  ASSERT_EQ(from_checkpoint.size(), 92u);
  const auto& a = from_artifact.at("blocks.3.mlp.fc.weight").values;
  const auto& c = from_checkpoint.at("blocks.3.mlp.fc.weight").values;
  ASSERT_EQ(a.size(), c.size());
  EXPECT_LT(Distortion::measure(c, a).relative_mse(), 1e-4);
  EXPECT_EQ(from_artifact.at("blocks.3.attn.q_gain").values, from_checkpoint.at("blocks.3.attn.q_gain").values)
      << "control tensors stay fp32: exact";
}

}  // namespace
}  // namespace pgolf

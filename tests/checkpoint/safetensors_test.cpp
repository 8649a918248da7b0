#include "checkpoint/safetensors.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::read_bytes;
using test::TempDir;
using test::write_bytes;

constexpr int64_t kBase9Params = 17'059'912;
constexpr size_t kBase9Tensors = 92;

std::string base9_shard(int k) {
  return test::sample_path("base9/base9-0000" + std::to_string(k) + "-of-00003.safetensors");
}

std::vector<uint8_t> as_bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<TensorData> to_tensor_data(const Checkpoint& checkpoint) {
  std::vector<TensorData> out;
  for (const auto& t : checkpoint.tensors())
    out.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(t.bytes.begin(), t.bytes.end())});
  return out;
}

void expect_same_tensors(const Checkpoint& a, const Checkpoint& b) {
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const TensorRef& x = a.tensors()[i];
    const TensorRef& y = b.tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype) << x.name;
    EXPECT_EQ(x.shape, y.shape) << x.name;
    ASSERT_EQ(x.bytes.size(), y.bytes.size()) << x.name;
    EXPECT_EQ(0, std::memcmp(x.bytes.data(), y.bytes.data(), x.bytes.size())) << x.name;
  }
  EXPECT_EQ(a.metadata(), b.metadata());
}

// Links the three base9 shards into folder (the samples are read-only; links cost nothing).
void link_base9_into(const fs::path& folder) {
  for (int k = 1; k <= 3; ++k) fs::create_symlink(base9_shard(k), folder / fs::path(base9_shard(k)).filename());
}

// ---- the small valid file that the malformed cases are edited from ----

// alpha F32 [2,3] (24 bytes), beta BF16 [4] (8 bytes), gamma F16 [2,2] (8 bytes), format=pt.
std::vector<uint8_t> small_file() {
  std::vector<TensorData> tensors = {
      {"gamma", DType::F16, {2, 2}, from_float(DType::F16, std::vector<float>{1.f, -2.f, 0.5f, 4.f})},
      {"alpha", DType::F32, {2, 3}, from_float(DType::F32, std::vector<float>{1, 2, 3, 4, 5, 6})},
      {"beta", DType::BF16, {4}, from_float(DType::BF16, std::vector<float>{0.25f, -1.f, 8.f, 3.f})},
  };
  return serialize_safetensors(tensors, {{"format", "pt"}});
}

const std::string kSmallHeader =
    R"({"__metadata__":{"format":"pt"},"alpha":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("beta":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},)"
    R"("gamma":{"dtype":"F16","shape":[2,2],"data_offsets":[32,40]}})";

uint64_t header_length(const std::vector<uint8_t>& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[i];
  return n;
}

void set_header_length(std::vector<uint8_t>& file, uint64_t n) {
  for (int i = 0; i < 8; ++i) file[i] = static_cast<uint8_t>(n >> (8 * i));
}

// The same file with header text `header` and the original data section.
std::vector<uint8_t> with_header(const std::vector<uint8_t>& file, const std::string& header) {
  std::vector<uint8_t> out(8 + header.size());
  set_header_length(out, header.size());
  std::copy(header.begin(), header.end(), out.begin() + 8);
  out.insert(out.end(), file.begin() + 8 + static_cast<ptrdiff_t>(header_length(file)), file.end());
  return out;
}

// The small file with one occurrence of `from` in its header replaced by `to`.
std::vector<uint8_t> small_file_edited(const std::string& from, const std::string& to) {
  std::vector<uint8_t> file = small_file();
  std::string header(file.begin() + 8, file.begin() + 8 + static_cast<ptrdiff_t>(header_length(file)));
  size_t at = header.find(from);
  if (at == std::string::npos || header.find(from, at + 1) != std::string::npos)
    throw std::logic_error("test edit: " + from + " is not in the header exactly once");
  header.replace(at, from.size(), to);
  return with_header(file, header);
}

// Every regular file that opening `paths` could touch: the paths and what folders hold.
std::map<std::string, std::vector<uint8_t>> snapshot(const std::vector<std::string>& paths) {
  std::map<std::string, std::vector<uint8_t>> files;
  for (const auto& p : paths) {
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file()) files[e.path().string()] = read_bytes(e.path().string());
    } else if (fs::is_regular_file(p)) {
      files[p] = read_bytes(p);
    }
  }
  return files;
}

// Opening must throw one InputError line holding every piece, and leave the files as they were.
void expect_open_fails(const std::vector<std::string>& paths, const std::vector<std::string>& pieces) {
  auto before = snapshot(paths);
  try {
    Checkpoint::open(paths);
    ADD_FAILURE() << "open succeeded; expected an error with " << pieces.front();
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& piece : pieces)
      EXPECT_NE(message.find(piece), std::string::npos) << "'" << piece << "' not in: " << message;
  }
  EXPECT_EQ(before, snapshot(paths)) << "a file changed";
}

// Writes bytes as dir/name and expects opening it to fail naming it and every piece.
void expect_file_fails(const std::vector<uint8_t>& bytes, std::vector<std::string> pieces) {
  TempDir dir;
  std::string path = dir.file("model.safetensors");
  write_bytes(path, bytes);
  pieces.push_back(path);
  expect_open_fails({path}, pieces);
}

// ---- the real checkpoint ----

TEST(SafetensorsBase9, OneShardNameReadsTheWholeSet) {
  Checkpoint c = Checkpoint::open({base9_shard(2)});
  EXPECT_EQ(c.files().size(), 3u);
  ASSERT_EQ(c.tensors().size(), kBase9Tensors);
  int64_t params = 0;
  for (const auto& t : c.tensors()) params += t.numel();
  EXPECT_EQ(params, kBase9Params);
  EXPECT_TRUE(std::is_sorted(c.tensors().begin(), c.tensors().end(),
                             [](const TensorRef& a, const TensorRef& b) { return a.name < b.name; }));
  EXPECT_EQ(c.at("tok_emb.weight").shape, (std::vector<int64_t>{1024, 512}));
  EXPECT_EQ(c.at("tok_emb.weight").dtype, DType::BF16);
  EXPECT_EQ(c.at("blocks.0.attn.c_q.weight").shape, (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(c.at("blocks.0.attn.c_k.weight").shape, (std::vector<int64_t>{256, 512}));
  EXPECT_EQ(c.at("blocks.8.resid_mix").shape, (std::vector<int64_t>{2, 512}));
  EXPECT_EQ(c.at("skip_weights").shape, (std::vector<int64_t>{4, 512}));
  EXPECT_EQ(c.at("tok_emb.weight").bytes.size(), 1024u * 512u * 2u);
  EXPECT_NE(c.at("tok_emb.weight").file.find("base9-00003-of-00003"), std::string::npos);
  EXPECT_EQ(c.find("no.such.tensor"), nullptr);
  EXPECT_EQ(c.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
}

TEST(SafetensorsBase9, OpenByFolderMatches) {
  Checkpoint by_shard = Checkpoint::open({base9_shard(1)});
  Checkpoint by_folder = Checkpoint::open({test::sample_path("base9")});
  EXPECT_EQ(by_folder.files().size(), 3u);
  expect_same_tensors(by_shard, by_folder);
}

TEST(SafetensorsBase9, OpenByFileListMatches) {
  Checkpoint by_shard = Checkpoint::open({base9_shard(3)});
  Checkpoint by_list = Checkpoint::open({base9_shard(1), base9_shard(2), base9_shard(3)});
  EXPECT_EQ(by_list.files().size(), 3u);
  expect_same_tensors(by_shard, by_list);
}

TEST(SafetensorsBase9, OpenByIndexMatches) {
  Checkpoint by_shard = Checkpoint::open({base9_shard(1)});
  TempDir dir;
  link_base9_into(dir.path());
  json index = {{"metadata", {{"total_size", 2 * kBase9Params}}}, {"weight_map", json::object()}};
  for (const auto& t : by_shard.tensors()) index["weight_map"][t.name] = fs::path(t.file).filename().string();
  std::string index_path = dir.file("model.safetensors.index.json");
  write_bytes(index_path, as_bytes(index.dump(2)));

  Checkpoint by_index = Checkpoint::open({index_path});
  EXPECT_EQ(by_index.files().size(), 3u);
  expect_same_tensors(by_shard, by_index);
  // A folder with one index reads through it.
  expect_same_tensors(by_shard, Checkpoint::open({dir.path().string()}));
}

// Reads a tensor's bytes straight from the file, with a header parsed here, not by the library.
std::vector<uint8_t> raw_tensor_bytes(const std::string& path, const std::string& name) {
  std::vector<uint8_t> file = read_bytes(path);
  uint64_t n = header_length(file);
  json header = json::parse(file.begin() + 8, file.begin() + 8 + static_cast<ptrdiff_t>(n));
  auto offsets = header.at(name).at("data_offsets");
  auto data = file.begin() + 8 + static_cast<ptrdiff_t>(n);
  return {data + offsets[0].get<ptrdiff_t>(), data + offsets[1].get<ptrdiff_t>()};
}

TEST(SafetensorsBase9, Bf16ToFloatMatchesRawBytes) {
  Checkpoint c = Checkpoint::open({base9_shard(1)});
  for (const std::string name : {"tok_emb.weight", "blocks.0.attn.c_k.weight", "blocks.4.resid_mix"}) {
    const TensorRef& t = c.at(name);
    std::vector<uint8_t> raw = raw_tensor_bytes(t.file, name);
    std::vector<float> floats = t.to_floats();
    ASSERT_EQ(raw.size(), 2 * floats.size()) << name;
    size_t nonzero = 0;
    for (size_t i = 0; i < floats.size(); ++i) {
      uint32_t bits = static_cast<uint32_t>(raw[2 * i] | (raw[2 * i + 1] << 8)) << 16;
      ASSERT_EQ(std::bit_cast<uint32_t>(floats[i]), bits) << name << " element " << i;
      nonzero += floats[i] != 0.f;
    }
    EXPECT_GT(nonzero, floats.size() / 2) << name;
  }
}

// No copy: every tensor's bytes lie inside a memory map of the file it came from.
TEST(SafetensorsBase9, TensorsAreViewsIntoTheMappedFiles) {
  Checkpoint c = Checkpoint::open({base9_shard(1)});
  std::map<std::string, std::vector<std::pair<uintptr_t, uintptr_t>>> ranges;  // file -> mapped ranges
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, device, inode, path;
    in >> range >> perms >> offset >> device >> inode >> path;
    if (path.empty()) continue;
    size_t dash = range.find('-');
    ranges[path].emplace_back(std::stoull(range.substr(0, dash), nullptr, 16),
                              std::stoull(range.substr(dash + 1), nullptr, 16));
  }
  for (const auto& t : c.tensors()) {
    auto begin = reinterpret_cast<uintptr_t>(t.bytes.data());
    bool inside = false;
    for (const auto& [lo, hi] : ranges[fs::canonical(t.file).string()])
      inside = inside || (lo <= begin && begin + t.bytes.size() <= hi);
    EXPECT_TRUE(inside) << t.name << " is not inside a map of " << t.file;
  }
}

TEST(SafetensorsRead, SeveralFilesGiveOneSortedListAndMergedMetadata) {
  TempDir dir;
  std::vector<TensorData> late = {{"zeta", DType::U8, {2}, {1, 2}}, {"mid", DType::I8, {1}, {3}}};
  std::vector<TensorData> early = {{"alpha", DType::I16, {1}, {4, 0}}};
  write_bytes(dir.file("a.safetensors"), serialize_safetensors(late, {{"format", "pt"}, {"x", "1"}}));
  write_bytes(dir.file("b.safetensors"), serialize_safetensors(early, {{"format", "pt"}, {"y", "2"}}));
  Checkpoint c = Checkpoint::open({dir.file("a.safetensors"), dir.file("b.safetensors"), dir.file("a.safetensors")});
  EXPECT_EQ(c.files(), (std::vector<std::string>{dir.file("a.safetensors"), dir.file("b.safetensors")}));
  std::vector<std::string> names;
  for (const auto& t : c.tensors()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "mid", "zeta"}));
  EXPECT_EQ(c.at("alpha").file, dir.file("b.safetensors"));
  EXPECT_EQ(c.at("alpha").to_floats(), std::vector<float>{4.f});
  EXPECT_EQ(c.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"x", "1"}, {"y", "2"}}));
}

// ---- writing ----

TEST(SafetensorsWrite, SmallFileHasTheReferenceLayout) {
  std::vector<uint8_t> file = small_file();
  uint64_t n = header_length(file);
  EXPECT_EQ((8 + n) % 8, 0u);
  std::string header(file.begin() + 8, file.begin() + 8 + static_cast<ptrdiff_t>(n));
  EXPECT_EQ(header, kSmallHeader + std::string(n - kSmallHeader.size(), ' '));
  EXPECT_EQ(file.size(), 8 + n + 40);
}

TEST(SafetensorsWrite, RoundTripKeepsBytesAndMetadata) {
  std::vector<float> weights = test::synthetic(test::Distribution::Gaussian, 3, 4, 7);
  std::vector<int64_t> ids = {-3, 1LL << 40};
  std::vector<uint8_t> id_bytes(16);
  std::memcpy(id_bytes.data(), ids.data(), 16);
  std::vector<TensorData> tensors = {
      {"z.last", DType::F32, {3, 4}, from_float(DType::F32, weights)},
      {"a.first", DType::BF16, {5}, from_float(DType::BF16, std::vector<float>{1.5f, -2.f, 1e-3f, 7.f, 0.f})},
      {"odd \"name\" \xc3\xbc", DType::F16, {2, 3}, from_float(DType::F16, std::vector<float>{1, 2, 3, 4, 5, 6})},
      {"ids", DType::I64, {2}, id_bytes},
      {"empty", DType::F32, {0, 4}, {}},
  };
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "\xc3\xbcn \"quoted\"\n line"}};
  TempDir dir;
  std::string path = dir.file("out.safetensors");
  write_safetensors(path, tensors, metadata, false);

  Checkpoint c = Checkpoint::open({path});
  EXPECT_EQ(c.metadata(), metadata);
  ASSERT_EQ(c.tensors().size(), tensors.size());
  for (const auto& t : tensors) {
    const TensorRef& r = c.at(t.name);
    EXPECT_EQ(r.dtype, t.dtype) << t.name;
    EXPECT_EQ(r.shape, t.shape) << t.name;
    EXPECT_EQ(std::vector<uint8_t>(r.bytes.begin(), r.bytes.end()), t.bytes) << t.name;
  }
  EXPECT_EQ(c.at("z.last").to_floats(), weights);
  EXPECT_EQ(c.at("ids").to_floats(), (std::vector<float>{-3.f, static_cast<float>(1LL << 40)}));
  EXPECT_EQ(c.tensors().front().name, "a.first");
  // Standard layout: data at an 8-byte boundary, tensors contiguous in name order.
  std::vector<uint8_t> file = read_bytes(path);
  EXPECT_EQ(header_length(file) % 8, 0u);
  json header = json::parse(file.begin() + 8, file.begin() + 8 + static_cast<ptrdiff_t>(header_length(file)));
  uint64_t expected_begin = 0;
  for (const auto& t : c.tensors()) {
    EXPECT_EQ(header.at(t.name).at("data_offsets")[0].get<uint64_t>(), expected_begin) << t.name;
    expected_begin += t.bytes.size();
  }
  EXPECT_EQ(file.size(), 8 + header_length(file) + expected_begin);
}

TEST(SafetensorsWrite, EmptyMetadataOmitsTheKey) {
  std::vector<TensorData> tensors = {{"w", DType::F32, {2}, from_float(DType::F32, std::vector<float>{1, 2})}};
  std::vector<uint8_t> file = serialize_safetensors(tensors, {});
  std::string text(file.begin(), file.end());
  EXPECT_EQ(text.find("__metadata__"), std::string::npos);
  EXPECT_NE(text.find("\"w\""), std::string::npos);
  TempDir dir;
  write_bytes(dir.file("w.safetensors"), file);
  EXPECT_TRUE(Checkpoint::open({dir.file("w.safetensors")}).metadata().empty());
}

// Our writer lays a file out as the reference writer does: each base9 shard comes back byte for byte.
TEST(SafetensorsWrite, ReserializingEachShardGivesItsOriginalBytes) {
  for (int k = 1; k <= 3; ++k) {
    TempDir dir;
    std::string single = dir.file("single.safetensors");  // not a shard name, so read alone
    fs::create_symlink(base9_shard(k), single);
    Checkpoint c = Checkpoint::open({single});
    EXPECT_TRUE(serialize_safetensors(to_tensor_data(c), c.metadata()) == read_bytes(base9_shard(k))) << "shard " << k;
  }
}

TEST(SafetensorsWrite, WriteOfReadIsDeterministic) {
  Checkpoint base9 = Checkpoint::open({base9_shard(1)});
  TempDir dir;
  std::string path = dir.file("all.safetensors");
  write_safetensors(path, to_tensor_data(base9), base9.metadata(), false);
  std::vector<uint8_t> written = read_bytes(path);

  Checkpoint again = Checkpoint::open({path});
  expect_same_tensors(base9, again);
  EXPECT_TRUE(serialize_safetensors(to_tensor_data(again), again.metadata()) == written);
}

TEST(SafetensorsWrite, RejectsWrongByteLength) {
  std::vector<TensorData> tensors = {{"w", DType::BF16, {3}, std::vector<uint8_t>(5)}};
  EXPECT_THROW(serialize_safetensors(tensors, {}), std::logic_error);
  tensors[0].shape = {-3};
  EXPECT_THROW(serialize_safetensors(tensors, {}), std::logic_error);
}

TEST(SafetensorsWrite, RejectsDuplicateNames) {
  std::vector<TensorData> tensors = {{"w", DType::U8, {1}, {1}}, {"w", DType::U8, {1}, {2}}};
  EXPECT_THROW(serialize_safetensors(tensors, {}), std::logic_error);
}

TEST(SafetensorsWrite, ReplacesAnExistingFileOnlyWhenAsked) {
  TempDir dir;
  std::string path = dir.file("w.safetensors");
  write_safetensors(path, {{"w", DType::U8, {1}, {1}}}, {}, false);
  EXPECT_THROW(write_safetensors(path, {{"w", DType::U8, {1}, {2}}}, {}, false), InputError);
  EXPECT_EQ(Checkpoint::open({path}).at("w").bytes[0], 1);
  write_safetensors(path, {{"w", DType::U8, {1}, {2}}}, {}, true);
  EXPECT_EQ(Checkpoint::open({path}).at("w").bytes[0], 2);
}

// ---- malformed input: each case names the file, and the tensor where there is one ----

TEST(SafetensorsMalformed, SmallFileIsValidToStartWith) {
  TempDir dir;
  write_bytes(dir.file("model.safetensors"), small_file());
  Checkpoint c = Checkpoint::open({dir.file("model.safetensors")});
  EXPECT_EQ(c.tensors().size(), 3u);
  EXPECT_EQ(c.at("beta").to_floats(), (std::vector<float>{0.25f, -1.f, 8.f, 3.f}));
}

TEST(SafetensorsMalformed, TruncatedToFiveBytes) {
  std::vector<uint8_t> file = small_file();
  file.resize(5);
  expect_file_fails(file, {"too short"});
}

TEST(SafetensorsMalformed, HeaderLengthZero) {
  std::vector<uint8_t> file = small_file();
  set_header_length(file, 0);
  expect_file_fails(file, {"header length is 0"});
}

TEST(SafetensorsMalformed, HeaderLengthPastTheEnd) {
  std::vector<uint8_t> file = small_file();
  set_header_length(file, file.size());
  expect_file_fails(file, {"runs past the end"});
}

TEST(SafetensorsMalformed, HugeHeaderLength) {
  std::vector<uint8_t> file = small_file();
  set_header_length(file, 200'000'000);
  expect_file_fails(file, {"over the limit"});
}

TEST(SafetensorsMalformed, HeaderNotJson) {
  expect_file_fails(with_header(small_file(), "this is not json at all"), {"not valid JSON"});
}

TEST(SafetensorsMalformed, HeaderIsAnArray) {
  expect_file_fails(with_header(small_file(), "[1, 2, 3]"), {"must be a JSON object"});
}

TEST(SafetensorsMalformed, EntryNotAnObject) {
  expect_file_fails(small_file_edited(R"({"dtype":"BF16","shape":[4],"data_offsets":[24,32]})", "[24,32]"),
                    {"\"beta\"", "must be an object"});
}

TEST(SafetensorsMalformed, EntryMissingDtype) {
  expect_file_fails(small_file_edited(R"("dtype":"BF16",)", ""), {"\"beta\"", "needs \"dtype\""});
}

TEST(SafetensorsMalformed, UnknownDtype) {
  expect_file_fails(small_file_edited(R"("BF16")", R"("F8")"), {"\"beta\"", "unknown dtype \"F8\""});
}

TEST(SafetensorsMalformed, ShapeNotAnArray) {
  expect_file_fails(small_file_edited(R"("shape":[4])", R"("shape":"4")"), {"\"beta\"", "needs \"shape\""});
}

TEST(SafetensorsMalformed, ShapeWithNegativeDim) {
  expect_file_fails(small_file_edited(R"("shape":[4])", R"("shape":[-4])"), {"\"beta\"", "negative dimension"});
}

TEST(SafetensorsMalformed, ElementCountOverflow) {
  expect_file_fails(small_file_edited(R"("shape":[4])", R"("shape":[4294967296,4294967296,4])"),
                    {"\"beta\"", "overflows"});
}

TEST(SafetensorsMalformed, DataOffsetsNotTwoIntegers) {
  expect_file_fails(small_file_edited("[24,32]", "[24,32,40]"), {"\"beta\"", "needs \"data_offsets\""});
}

TEST(SafetensorsMalformed, DataOffsetsEndBeforeBegin) {
  expect_file_fails(small_file_edited("[24,32]", "[32,24]"), {"\"beta\"", "end before they begin"});
}

TEST(SafetensorsMalformed, DataOffsetsPastTheDataSection) {
  expect_file_fails(
      small_file_edited(R"("shape":[2,2],"data_offsets":[32,40])", R"("shape":[2,4],"data_offsets":[32,48])"),
      {"\"gamma\"", "past the data section"});
}

TEST(SafetensorsMalformed, ByteLengthMismatch) {
  expect_file_fails(small_file_edited(R"("shape":[4])", R"("shape":[5])"),
                    {"\"beta\"", "hold 8 bytes but BF16 [5] needs 10"});
}

TEST(SafetensorsMalformed, OverlappingTensors) {
  expect_file_fails(small_file_edited("[24,32]", "[16,24]"), {"\"alpha\" and \"beta\" overlap"});
}

TEST(SafetensorsMalformed, HoleInTheDataSection) {
  expect_file_fails(small_file_edited(R"(,"beta":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]})", ""),
                    {"bytes 24..32 of the data section belong to no tensor"});
}

TEST(SafetensorsMalformed, TrailingBytesAfterTheLastTensor) {
  std::vector<uint8_t> file = small_file();
  file.insert(file.end(), 8, 0);
  expect_file_fails(file, {"bytes 40..48 of the data section belong to no tensor"});
}

TEST(SafetensorsMalformed, DuplicateNameInOneHeader) {
  expect_file_fails(small_file_edited(R"("gamma":)", R"("beta":)"), {"\"beta\" appears twice"});
}

TEST(SafetensorsMalformed, DuplicateNameAcrossTwoFiles) {
  TempDir dir;
  write_bytes(dir.file("a.safetensors"), small_file());
  write_bytes(dir.file("b.safetensors"), small_file_edited("\"gamma\"", "\"delta\""));
  expect_open_fails({dir.file("a.safetensors"), dir.file("b.safetensors")},
                    {"\"alpha\" is in both", dir.file("a.safetensors"), dir.file("b.safetensors")});
}

TEST(SafetensorsMalformed, MetadataWithANonStringValue) {
  expect_file_fails(small_file_edited(R"({"format":"pt"})", R"({"format":5})"), {"__metadata__", "\"format\""});
}

TEST(SafetensorsMalformed, MetadataNotAnObject) {
  expect_file_fails(small_file_edited(R"({"format":"pt"})", R"(["pt"])"), {"__metadata__ must be an object"});
}

TEST(SafetensorsMalformed, MetadataConflictingAcrossFiles) {
  TempDir dir;
  write_bytes(dir.file("a.safetensors"), small_file());
  std::vector<TensorData> other = {{"delta", DType::U8, {1}, {7}}};
  write_bytes(dir.file("b.safetensors"), serialize_safetensors(other, {{"format", "np"}}));
  expect_open_fails({dir.file("a.safetensors"), dir.file("b.safetensors")},
                    {dir.file("b.safetensors"), "\"format\" is \"np\" but \"pt\""});
}

TEST(SafetensorsMalformed, IndexNamesAMissingFile) {
  TempDir dir;
  write_bytes(dir.file("part-a.safetensors"), small_file());
  std::string index = dir.file("model.safetensors.index.json");
  write_bytes(index,
              as_bytes(R"({"metadata":{},"weight_map":{"alpha":"part-a.safetensors","zeta":"part-b.safetensors"}})"));
  expect_open_fails({index}, {index, "missing file part-b.safetensors", "\"zeta\""});
}

TEST(SafetensorsMalformed, IndexTensorAbsentFromItsFile) {
  TempDir dir;
  write_bytes(dir.file("part-a.safetensors"), small_file());
  std::string index = dir.file("model.safetensors.index.json");
  write_bytes(index, as_bytes(R"({"weight_map":{"alpha":"part-a.safetensors","zeta":"part-a.safetensors"}})"));
  expect_open_fails({index}, {index, "\"zeta\" is mapped to", "part-a.safetensors"});
}

TEST(SafetensorsMalformed, IndexNamingTheWrongFile) {
  TempDir dir;
  write_bytes(dir.file("part-a.safetensors"), small_file());
  write_bytes(dir.file("part-b.safetensors"), serialize_safetensors({{"delta", DType::U8, {1}, {7}}}, {}));
  std::string index = dir.file("model.safetensors.index.json");
  write_bytes(index, as_bytes(R"({"weight_map":{"alpha":"part-b.safetensors","delta":"part-b.safetensors"}})"));
  expect_open_fails({index}, {index, "\"alpha\" is mapped to", "part-b.safetensors"});
}

TEST(SafetensorsMalformed, MissingShardTwoOfThree) {
  TempDir dir;
  for (int k : {1, 3}) fs::create_symlink(base9_shard(k), dir.path() / fs::path(base9_shard(k)).filename());
  std::string first = dir.file("base9-00001-of-00003.safetensors");
  expect_open_fails({first}, {first, "shard 2 of 3 is missing", "base9-00002-of-00003.safetensors"});
}

TEST(SafetensorsMalformed, ShardNumberOutOfRange) {
  TempDir dir;
  write_bytes(dir.file("m-00004-of-00003.safetensors"), small_file());
  expect_open_fails({dir.file("m-00004-of-00003.safetensors")},
                    {"m-00004-of-00003.safetensors", "shard 4 is not in 1..3"});
}

TEST(SafetensorsMalformed, NonexistentPath) {
  TempDir dir;
  expect_open_fails({dir.file("nothing.safetensors")}, {dir.file("nothing.safetensors"), "no such file"});
}

TEST(SafetensorsMalformed, EmptyFolder) {
  TempDir dir;
  expect_open_fails({dir.path().string()}, {dir.path().string(), "no *.safetensors files"});
}

TEST(SafetensorsMalformed, NoTensors) {
  TempDir dir;
  write_bytes(dir.file("empty.safetensors"), serialize_safetensors({}, {{"format", "pt"}}));
  expect_open_fails({dir.file("empty.safetensors")}, {dir.file("empty.safetensors"), "no tensors found"});
}

TEST(SafetensorsMalformed, AtAnUnknownTensor) {
  TempDir dir;
  write_bytes(dir.file("model.safetensors"), small_file());
  Checkpoint c = Checkpoint::open({dir.file("model.safetensors")});
  try {
    c.at("delta");
    ADD_FAILURE() << "at() found a tensor that is not there";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor named \"delta\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.file("model.safetensors")), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pgolf

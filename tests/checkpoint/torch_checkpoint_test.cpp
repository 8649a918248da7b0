// torch.save files: the fixtures PyTorch made (tests/fixtures/torch/make_fixtures.py) read to the
// values torch.load gives, views and shared storages included; what pgolf writes reads back; and
// malformed or malicious files are each one clear InputError, with nothing run and nothing allocated
// past what the file holds.
#include "checkpoint/torch_checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>

#include "checkpoint/torch_pickle.h"
#include "checkpoint/zip_store.h"
#include "core/error.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

std::string fixture(const std::string& name) { return test::source_dir() + "/tests/fixtures/torch/" + name; }

TEST(TorchCheckpoint, FixturesReadToTheValuesTorchGives) {
  for (const char* name : {"dtypes", "views", "module", "nested", "legacy"}) {
    const Checkpoint pt = Checkpoint::open({fixture(std::string(name) + ".pt")});
    const Checkpoint expected = Checkpoint::open({fixture(std::string(name) + ".expected.safetensors")});
    ASSERT_EQ(pt.tensors().size(), expected.tensors().size()) << name;
    for (size_t i = 0; i < pt.tensors().size(); ++i) {
      const TensorRef &a = pt.tensors()[i], &b = expected.tensors()[i];
      EXPECT_EQ(a.name, b.name) << name;
      EXPECT_EQ(a.dtype, b.dtype) << name << " " << a.name;
      EXPECT_EQ(a.shape, b.shape) << name << " " << a.name;
      EXPECT_TRUE(std::equal(a.bytes.begin(), a.bytes.end(), b.bytes.begin(), b.bytes.end())) << name << " " << a.name;
    }
    EXPECT_EQ(pt.metadata().at("format"), "pt");
  }
  // The tied weight: two names, one storage, equal values.
  const Checkpoint views = Checkpoint::open({fixture("views.pt")});
  EXPECT_EQ(views.at("tok_emb.weight").to_floats(), views.at("lm_head.weight").to_floats());
  EXPECT_EQ(views.at("transposed").shape, (std::vector<int64_t>{8, 6}));
}

TEST(TorchCheckpoint, TheLegacyFormatReadsItsTiedAndOffsetTensors) {
  const Checkpoint legacy = Checkpoint::open({fixture("legacy.pt")});
  EXPECT_EQ(legacy.at("w").to_floats(), legacy.at("tied").to_floats());
  EXPECT_EQ(legacy.at("ids").dtype, DType::I64);
  EXPECT_EQ(legacy.at("half").dtype, DType::BF16);
}

TEST(TorchCheckpoint, WhatPgolfWritesReadsBackAligned) {
  const Checkpoint source = Checkpoint::open({fixture("dtypes.pt")});
  std::vector<TensorData> tensors;
  for (const TensorRef& t : source.tensors()) tensors.push_back({t.name, t.dtype, t.shape, {t.bytes.begin(), t.bytes.end()}});
  test::TempDir dir;
  const std::string path = dir.file("out.pt");
  write_torch(path, tensors, false);
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  EXPECT_EQ(serialize_torch(tensors), bytes) << "same tensors, same bytes";
  for (const ZipEntry& e : read_stored_zip(bytes, path))
    if (e.name.starts_with("archive/data/") && !e.data.empty())
      EXPECT_EQ((e.data.data() - bytes.data()) % 64, 0) << e.name << " is not 64-byte aligned";
  const Checkpoint back = Checkpoint::open({path});
  ASSERT_EQ(back.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back.tensors()[i].name, tensors[i].name);
    EXPECT_EQ(back.tensors()[i].shape, tensors[i].shape);
    EXPECT_TRUE(std::equal(tensors[i].bytes.begin(), tensors[i].bytes.end(), back.tensors()[i].bytes.begin(),
                           back.tensors()[i].bytes.end()));
  }
}

// ---- malformed and malicious files: every one a one-line InputError ----

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// A pickle of protocol 2 around body, ending with STOP.
std::string pickle(const std::string& body) { return std::string("\x80\x02", 2) + body + "."; }

// BINUNICODE s.
std::string unicode(const std::string& s) {
  const uint32_t n = static_cast<uint32_t>(s.size());
  return "X" + std::string{static_cast<char>(n), static_cast<char>(n >> 8), static_cast<char>(n >> 16),
                           static_cast<char>(n >> 24)} + s;
}

std::vector<uint8_t> zip_of(const std::vector<std::pair<std::string, std::vector<uint8_t>>>& files) {
  std::vector<ZipEntry> entries;
  for (const auto& [name, data] : files) entries.push_back({name, data});
  return write_stored_zip(entries);
}

// A zip holding archive/data.pkl = pickle_bytes and the given storages (archive/data/KEY).
std::vector<uint8_t> torch_file(const std::string& pickle_bytes,
                                const std::vector<std::pair<std::string, std::vector<uint8_t>>>& storages = {}) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files{{"archive/data.pkl", bytes_of(pickle_bytes)}};
  for (const auto& [key, data] : storages) files.push_back({"archive/data/" + key, data});
  return zip_of(files);
}

// Tensor 'w' (shape, stride, offset) on F32 storage `key` of numel elements, pickled as torch.save
// does; the storage entry '0' holds storage_bytes (default numel * 4).
std::vector<uint8_t> one_tensor(std::vector<int64_t> shape, std::vector<int64_t> stride, int64_t offset, int64_t numel,
                                int64_t storage_bytes = -1, const std::string& key = "0") {
  const PickledStateDict state{{{key, DType::F32, numel}}, {{"w", 0, offset, shape, stride}}};
  const std::vector<uint8_t> p = pickle_state_dict(state);
  return torch_file(std::string(p.begin(), p.end()),
                    {{"0", std::vector<uint8_t>(static_cast<size_t>(storage_bytes >= 0 ? storage_bytes : numel * 4), 0)}});
}

struct BadFile {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* message;  // part of the error
};

std::vector<BadFile> bad_files() {
  const std::vector<uint8_t> good = test::read_bytes(fixture("views.pt"));
  std::vector<BadFile> files;
  auto add = [&](const char* what, std::vector<uint8_t> bytes, const char* message) {
    files.push_back({what, std::move(bytes), message});
  };
  add("not a zip, only its magic", bytes_of("PK\x03\x04garbage"), "not a readable zip archive");
  add("truncated archive", std::vector<uint8_t>(good.begin(), good.begin() + static_cast<ptrdiff_t>(good.size() / 2)),
      "not a readable zip archive");
  std::vector<uint8_t> corrupt = good;
  for (const ZipEntry& e : read_stored_zip(good, "views.pt"))
    if (e.name.ends_with("/data/0")) corrupt[static_cast<size_t>(e.data.data() - good.data()) + 5] ^= 0x5A;
  add("a flipped byte in a storage", corrupt, "CRC-32 mismatch");
  std::vector<uint8_t> compressed = good;
  compressed[8] = 8;  // the first local header's method: deflate
  add("a compressed entry's local header", compressed, "disagrees on the method");
  add("no data.pkl", zip_of({{"archive/other", {}}}), "without ARCHIVE/data.pkl");
  add("an entry outside the archive folder", zip_of({{"data.pkl", {}}}), "outside the archive folder");
  add("os.system", torch_file(pickle("cos\nsystem\n" + unicode("touch /tmp/pgolf-was-here") + "\x85R")),
      "global 'os.system' is not allowed");
  add("builtins.eval", torch_file(pickle("cbuiltins\neval\n" + unicode("1+1") + "\x85R")), "global 'builtins.eval'");
  add("__builtin__.exec via STACK_GLOBAL",
      torch_file(pickle("\x8c\x0b__builtin__\x8c\x04" "exec\x93")), "global '__builtin__.exec'");
  add("the INST opcode", torch_file(pickle("(ios\nsystem\n")), "opcode 0x69");
  add("the OBJ opcode", torch_file(pickle("(o")), "opcode 0x6f");
  add("a storage type called", torch_file(pickle("ctorch\nFloatStorage\n)R")), "cannot be called");
  add("deep nesting", torch_file(pickle(")" + std::string(100, '\x85'))), "nested deeper than 64");
  add("a dict inside itself", torch_file(pickle(std::string("}q\x00h\x00h\x00s", 8))), "inside itself");
  add("a memo entry never put", torch_file(pickle("h\x07")), "memo entry 7");
  add("a truncated pickle", torch_file(std::string("\x80\x02}q\x00(X\x01\x00", 9)), "truncated");
  add("a pickle that is not a dict", torch_file(pickle("]")), "not a state dict");
  add("a state dict with no tensors", torch_file(pickle("ccollections\nOrderedDict\n)R")), "no tensors");
  add("a key that is not a string", torch_file(pickle("}K\x01K\x02s")), "not a name");
  add("protocol 1", torch_file("\x80\x01}."), "protocol 1");
  add("a missing storage", one_tensor({2}, {1}, 0, 2, -1, "7"), "storage '7' has no entry");
  add("a truncated storage", one_tensor({4}, {1}, 0, 4, 12), "holds 12 bytes, not 4 F32 elements");
  add("a huge declared storage", one_tensor({4}, {1}, 0, int64_t{1} << 60, 16), "not 1152921504606846976 F32");
  add("a view past its storage", one_tensor({4}, {1}, 1, 4), "reaches element 4");
  add("a stride past its storage", one_tensor({2, 2}, {3, 1}, 0, 4), "reaches element 4");
  add("a size that overflows", one_tensor({int64_t{1} << 40, int64_t{1} << 40}, {1, 1}, 0, 4), "overflows");
  add("a stride that overflows", one_tensor({3}, {int64_t{1} << 62}, 0, 4), "overflows");
  add("an expanded view", one_tensor({8}, {0}, 0, 4), "more elements than its storage");
  add("size and stride of different lengths", one_tensor({2, 2}, {1}, 0, 4), "differ in length");
  const PickledStateDict one{{{"0", DType::F32, 1}}, {{"w", 0, 0, {1}, {1}}}};
  const std::vector<uint8_t> legacy = test::read_bytes(fixture("legacy.pt"));
  add("a truncated legacy file", std::vector<uint8_t>(legacy.begin(), legacy.end() - 9), "does not hold");
  std::vector<uint8_t> padded = legacy;
  padded.push_back(0);
  add("a legacy file with a byte after its storages", padded, "1 bytes after the last storage");
  add("a legacy file cut inside its pickles", std::vector<uint8_t>(legacy.begin(), legacy.begin() + 100), "truncated");
  add("a big-endian file",
      zip_of({{"a/data.pkl", pickle_state_dict(one)}, {"a/data/0", std::vector<uint8_t>(4, 0)}, {"a/byteorder", bytes_of("big")}}),
      "only little-endian");
  return files;
}

TEST(TorchCheckpoint, MalformedAndMaliciousFilesAreOneLineErrors) {
  const std::vector<BadFile> files = bad_files();
  EXPECT_GE(files.size(), 20u);
  for (const BadFile& f : files) {
    try {
      read_torch_tensors(f.bytes, "bad.pt");
      ADD_FAILURE() << f.what << ": no error";
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(f.message), std::string::npos) << f.what << ": " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << f.what << ": " << message;
      EXPECT_EQ(message.rfind("bad.pt", 0), 0u) << f.what << ": names the file: " << message;
    }
  }
}

}  // namespace
}  // namespace pgolf

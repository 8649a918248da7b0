#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

const Tokenizer& sp1024() {
  static const Tokenizer tokenizer = Tokenizer::load(test::sample_path("sp1024/corpus_1024_bpe.model"));
  return tokenizer;
}

// Bytes counted for text encoded after a BOS, as the val split is.
int64_t counted_bytes(const std::string& text) {
  std::vector<int> ids = sp1024().encode(text);
  ids.insert(ids.begin(), 1);
  int64_t bytes = 0;
  for (size_t i = 1; i < ids.size(); ++i) bytes += sp1024().byte_table().bytes(ids[i - 1], ids[i]);
  return bytes;
}

TEST(Tokenizer, LoadsTheCorpusModel) {
  EXPECT_EQ(sp1024().vocab_size(), 1024);
  EXPECT_EQ(sp1024().byte_table().size(), 1024);
}

TEST(Tokenizer, ControlAndUnknownPiecesAreZeroByteBoundaries) {
  const ByteTable& table = sp1024().byte_table();
  for (int id : {0, 1, 2, 3}) {  // pad, bos, eos, unk
    EXPECT_EQ(table.base_bytes[id], 0) << id;
    EXPECT_TRUE(table.is_boundary[id]) << id;
  }
  EXPECT_EQ(table.bytes(5, 1), 0);
  EXPECT_EQ(table.bytes(5, 5000), 0);  // ids past the table count nothing
}

TEST(Tokenizer, LeadingSpaceCountsOnlyAfterANonBoundary) {
  const ByteTable& table = sp1024().byte_table();
  std::vector<int> ids = sp1024().encode("a the");
  ASSERT_EQ(ids.size(), 2u);
  const int the = ids[1];  // "▁the"
  ASSERT_TRUE(table.has_leading_space[the]);
  EXPECT_EQ(table.base_bytes[the], 3);
  EXPECT_EQ(table.bytes(ids[0], the), 4);
  EXPECT_EQ(table.bytes(1, the), 3);     // after BOS
  EXPECT_EQ(table.bytes(4000, the), 3);  // an id past the table is a boundary
}

// Every byte of NFKC-stable text is counted once: plain ASCII, multi-byte UTF-8 pieces, and
// characters outside the vocab, which fall back to one token per byte.
TEST(Tokenizer, CountedBytesAreTheTextsUtf8Bytes) {
  const std::string ascii = "The quick brown fox jumps over the lazy dog; it's 1234 km away.\nNext line.";
  EXPECT_EQ(counted_bytes(ascii), static_cast<int64_t>(ascii.size()));
  const std::string rare = "caf\xC3\xA9 \xF0\x9F\xA6\x9C \xE6\xBC\xA2\xE5\xAD\x97 done";  // café 🦜 漢字 done
  std::vector<int> ids = sp1024().encode(rare);
  // This vocab lists the 256 byte pieces <0x00>..<0xFF> as ids 4..259.
  EXPECT_TRUE(std::any_of(ids.begin(), ids.end(), [](int id) { return id >= 4 && id < 260; }))
      << "expected byte-fallback tokens";
  for (int id = 4; id < 260; ++id) EXPECT_EQ(sp1024().byte_table().base_bytes[id], 1) << id;
  EXPECT_EQ(counted_bytes(rare), static_cast<int64_t>(rare.size()));
}

TEST(Tokenizer, NotAModelIsAnInputErrorNamingTheFile) {
  const std::string path = test::sample_path("sp1024/corpus_1024_bpe.vocab");
  EXPECT_NE(test::input_error([&] { Tokenizer::load(path); }).find(path), std::string::npos);
}

}  // namespace
}  // namespace pgolf

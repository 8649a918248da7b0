#include "data/shards.h"

#include <gtest/gtest.h>

#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using test::input_error;
using test::TempDir;

TEST(Shards, WriteThenOpenRoundTrips) {
  TempDir dir;
  std::vector<uint16_t> tokens = {1, 812, 781, 65535, 0, 42};
  write_shard(dir.file("x_val_000000.bin"), tokens, false);
  auto bytes = test::read_bytes(dir.file("x_val_000000.bin"));
  ASSERT_EQ(bytes.size(), 1024 + 2 * tokens.size());
  EXPECT_EQ(bytes[0] | bytes[1] << 8 | bytes[2] << 16 | bytes[3] << 24, 20240520);
  EXPECT_EQ(bytes[1024 + 2 * 3], 0xFF);  // little-endian 65535
  auto shard = TokenShard::open(dir.file("x_val_000000.bin"));
  EXPECT_EQ(std::vector<uint16_t>(shard.tokens().begin(), shard.tokens().end()), tokens);
  EXPECT_NE(input_error([&] { write_shard(dir.file("x_val_000000.bin"), tokens, false); }), "");
}

TEST(Shards, SampleValShardStartsAsTheSplitDoes) {
  auto shard = TokenShard::open(test::sample_path("sp1024/corpus_val_000000.bin"));
  ASSERT_EQ(shard.tokens().size(), 66000u);
  std::vector<uint16_t> head(shard.tokens().begin(), shard.tokens().begin() + 8);
  EXPECT_EQ(head, (std::vector<uint16_t>{1, 812, 781, 717, 781, 309, 792, 354}));
}

TEST(Shards, WrongMagicNamesTheFileAndTheMagic) {
  TempDir dir;
  std::string path = dir.file("bad_val_000000.bin");
  write_shard(path, std::vector<uint16_t>{1, 2, 3}, false);
  auto bytes = test::read_bytes(path);
  bytes[0] ^= 1;
  test::write_bytes(path, bytes);
  std::string message = input_error([&] { TokenShard::open(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("magic"), std::string::npos) << message;
}

TEST(Shards, WrongVersionIsRefused) {
  TempDir dir;
  std::string path = dir.file("bad_val_000000.bin");
  write_shard(path, std::vector<uint16_t>{1, 2, 3}, false);
  auto bytes = test::read_bytes(path);
  bytes[4] = 2;
  test::write_bytes(path, bytes);
  EXPECT_NE(input_error([&] { TokenShard::open(path); }).find("version 2"), std::string::npos);
}

TEST(Shards, TruncatedOrPaddedShardNamesTheSizes) {
  TempDir dir;
  std::string path = dir.file("cut_val_000000.bin");
  write_shard(path, std::vector<uint16_t>(100, 7), false);
  auto bytes = test::read_bytes(path);
  test::write_bytes(path, {bytes.begin(), bytes.end() - 3});
  std::string message = input_error([&] { TokenShard::open(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("1224"), std::string::npos) << message;  // expected 1024 + 2 * 100 bytes

  bytes.push_back(0);
  test::write_bytes(path, bytes);
  EXPECT_NE(input_error([&] { TokenShard::open(path); }).find("trailing"), std::string::npos);
  test::write_bytes(path, {bytes.begin(), bytes.begin() + 100});
  EXPECT_NE(input_error([&] { TokenShard::open(path); }).find("header"), std::string::npos);
}

// A header that declares the most tokens a shard can hold, on a file of a header alone.
TEST(Shards, DeclaredCountBeyondTheFileIsRefused) {
  TempDir dir;
  std::string path = dir.file("huge_val_000000.bin");
  write_shard(path, std::vector<uint16_t>{}, false);
  auto bytes = test::read_bytes(path);
  for (int i = 0; i < 4; ++i) bytes[8 + i] = i < 3 ? 0xff : 0x7f;  // INT32_MAX tokens
  test::write_bytes(path, bytes);
  std::string message = input_error([&] { TokenShard::open(path); });
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("2147483647 tokens"), std::string::npos) << message;
  for (int i = 0; i < 4; ++i) bytes[8 + i] = 0xff;  // -1
  test::write_bytes(path, bytes);
  EXPECT_NE(input_error([&] { TokenShard::open(path); }).find("negative"), std::string::npos);
}

TEST(Shards, FindShardsPicksOneSplitInNameOrder) {
  TempDir dir;
  for (const char* name : {"c_val_000001.bin", "c_train_000000.bin", "c_val_000000.bin", "c_val_000002.txt"})
    write_shard(dir.file(name), std::vector<uint16_t>{1}, false);
  auto val = find_shards(dir.path().string(), "val");
  ASSERT_EQ(val.size(), 2u);
  EXPECT_EQ(val[0], dir.file("c_val_000000.bin"));
  EXPECT_EQ(val[1], dir.file("c_val_000001.bin"));
  EXPECT_EQ(find_shards(dir.path().string(), "train").size(), 1u);
  TempDir empty;
  EXPECT_NE(input_error([&] { find_shards(empty.path().string(), "val"); }).find(empty.path().string()),
            std::string::npos);
}

}  // namespace
}  // namespace pgolf

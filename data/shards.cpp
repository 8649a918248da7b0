#include "data/shards.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace pgolf {

namespace {

int32_t read_le_int32(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                              static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24);
}

void put_le_int32(uint8_t* p, int32_t value) {
  auto v = static_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

}  // namespace

TokenShard TokenShard::open(const std::string& path) {
  TokenShard shard;
  shard.map_ = MappedFile::open(path);
  std::span<const uint8_t> bytes = shard.map_->bytes();
  require(bytes.size() >= kShardHeaderBytes, path + ": not a token shard: " + std::to_string(bytes.size()) +
                                                 " bytes, shorter than the " + std::to_string(kShardHeaderBytes) +
                                                 "-byte header");
  int32_t magic = read_le_int32(bytes.data());
  int32_t version = read_le_int32(bytes.data() + 4);
  int32_t count = read_le_int32(bytes.data() + 8);
  require(magic == kShardMagic, path + ": not a token shard: magic " + std::to_string(magic) + ", expected " +
                                    std::to_string(kShardMagic));
  require(version == kShardVersion, path + ": unsupported token shard version " + std::to_string(version) +
                                        ", expected " + std::to_string(kShardVersion));
  require(count >= 0, path + ": negative token count " + std::to_string(count));
  size_t expected = kShardHeaderBytes + 2 * static_cast<size_t>(count);
  require(bytes.size() == expected, path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                                        std::to_string(expected) + " for " + std::to_string(count) + " tokens (" +
                                        (bytes.size() < expected ? "truncated" : "trailing bytes") + ")");
  // The body starts 1024 bytes into a page-aligned map, so it is aligned for uint16_t.
  // Shards are little-endian, as is every machine pgolf builds for.
  shard.tokens_ = {reinterpret_cast<const uint16_t*>(bytes.data() + kShardHeaderBytes), static_cast<size_t>(count)};
  return shard;
}

void write_shard(const std::string& path, std::span<const uint16_t> tokens, bool overwrite) {
  require(tokens.size() <= static_cast<size_t>(INT32_MAX),
          path + ": " + std::to_string(tokens.size()) + " tokens do not fit one shard");
  std::vector<uint8_t> bytes(kShardHeaderBytes + 2 * tokens.size(), 0);
  put_le_int32(bytes.data(), kShardMagic);
  put_le_int32(bytes.data() + 4, kShardVersion);
  put_le_int32(bytes.data() + 8, static_cast<int32_t>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) {
    bytes[kShardHeaderBytes + 2 * i] = static_cast<uint8_t>(tokens[i]);
    bytes[kShardHeaderBytes + 2 * i + 1] = static_cast<uint8_t>(tokens[i] >> 8);
  }
  write_file_atomic(path, bytes, overwrite);
}

std::vector<std::string> find_shards(const std::string& dir, const std::string& split) {
  namespace fs = std::filesystem;
  std::error_code ec;
  require(fs::is_directory(dir, ec), dir + ": not a folder");
  std::string marker = "_" + split + "_";
  std::vector<std::string> shards;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.ends_with(".bin") && name.find(marker) != std::string::npos)
      shards.push_back(entry.path().string());
  }
  require(!ec, dir + ": cannot list: " + ec.message());
  require(!shards.empty(), dir + ": no *" + marker + "*.bin token shards");
  std::sort(shards.begin(), shards.end());
  return shards;
}

}  // namespace pgolf

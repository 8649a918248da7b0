// Token shards in Parameter Golf's format: a header of 256 little-endian int32
// (magic 20240520, version 1, token count, the rest zero), then that many little-endian
// uint16 tokens; the file is exactly 1024 + 2*count bytes.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/mapped_file.h"

namespace pgolf {

inline constexpr int32_t kShardMagic = 20240520;
inline constexpr int32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 256 * 4;

// A memory-mapped, validated shard. Throws InputError naming the file on a wrong magic,
// version or size.
class TokenShard {
 public:
  static TokenShard open(const std::string& path);
  std::span<const uint16_t> tokens() const { return tokens_; }
  const std::string& path() const { return map_->path(); }

 private:
  std::shared_ptr<const MappedFile> map_;
  std::span<const uint16_t> tokens_;
};

// Writes a shard atomically.
void write_shard(const std::string& path, std::span<const uint16_t> tokens, bool overwrite);

// The shards of one split in a data folder: every *_val_*.bin (split "val") or *_train_*.bin
// (split "train"), sorted by name. Throws InputError naming the folder when there are none.
std::vector<std::string> find_shards(const std::string& dir, const std::string& split);

}  // namespace pgolf

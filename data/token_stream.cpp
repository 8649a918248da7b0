#include "data/token_stream.h"

#include <algorithm>

#include "core/error.h"

namespace pgolf {

TokenStream::TokenStream(const std::vector<std::string>& shard_paths, StreamPosition position) : position_(position) {
  require(!shard_paths.empty(), "no train shards");
  bool any_tokens = false;
  for (const std::string& path : shard_paths) {
    shards_.push_back(TokenShard::open(path));
    any_tokens = any_tokens || !shards_.back().tokens().empty();
  }
  require(any_tokens, shard_paths[0] + ": the train shards hold no tokens");
  require(position.shard >= 0 && position.shard < static_cast<int64_t>(shards_.size()) && position.offset >= 0 &&
              position.offset <= static_cast<int64_t>(shards_[position.shard].tokens().size()),
          "data position shard " + std::to_string(position.shard) + " offset " + std::to_string(position.offset) +
              " is outside the " + std::to_string(shards_.size()) + " train shards");
}

std::vector<uint16_t> TokenStream::take(size_t n) {
  std::vector<uint16_t> tokens;
  tokens.reserve(n);
  while (tokens.size() < n) {
    auto shard = shards_[position_.shard].tokens();
    const size_t available = shard.size() - static_cast<size_t>(position_.offset);
    if (available == 0) {
      position_ = {(position_.shard + 1) % static_cast<int64_t>(shards_.size()), 0};
      continue;
    }
    const size_t k = std::min(n - tokens.size(), available);
    tokens.insert(tokens.end(), shard.begin() + position_.offset, shard.begin() + position_.offset + k);
    position_.offset += static_cast<int64_t>(k);
  }
  return tokens;
}

}  // namespace pgolf

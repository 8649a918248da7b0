// The training data as the reference trainer reads it (TokenStream in train_gpt.py): the train
// shards in name order, read front to back and wrapped around to the first after the last.
// The position (shard, offset) is part of the training state, so a resumed run reads on from
// where the saved one stopped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shards.h"

namespace pgolf {

struct StreamPosition {
  int64_t shard = 0;
  int64_t offset = 0;  // tokens of that shard already read
};

class TokenStream {
 public:
  // InputError when there are no shards or the position is outside them.
  TokenStream(const std::vector<std::string>& shard_paths, StreamPosition position = {});

  // The next n tokens, across shard boundaries.
  std::vector<uint16_t> take(size_t n);
  StreamPosition position() const { return position_; }
  size_t shard_count() const { return shards_.size(); }

 private:
  std::vector<TokenShard> shards_;
  StreamPosition position_;
};

}  // namespace pgolf

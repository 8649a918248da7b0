#include "cli/val_data.h"

#include <filesystem>

#include "core/error.h"
#include "data/shards.h"

namespace pgolf::cli {

std::string find_tokenizer(const std::string& dir) {
  std::vector<std::string> models;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".model") models.push_back(entry.path().string());
  require(models.size() == 1, dir + ": " + (models.empty() ? std::string("no") : std::to_string(models.size())) +
                                  " *.model tokenizer files; name one with --tokenizer");
  return models[0];
}

std::vector<uint16_t> read_val_tokens(const std::vector<std::string>& shards, size_t needed) {
  std::vector<uint16_t> tokens;
  for (const auto& path : shards) {
    auto shard = TokenShard::open(path);
    tokens.insert(tokens.end(), shard.tokens().begin(), shard.tokens().end());
    if (needed > 0 && tokens.size() >= needed) break;
  }
  if (needed > 0 && tokens.size() > needed) tokens.resize(needed);
  return tokens;
}

}  // namespace pgolf::cli

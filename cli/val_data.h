// The val split of a Parameter Golf data folder, as the evaluating subcommands read it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pgolf::cli {

// The one *.model file in the data folder; InputError when there is not exactly one.
std::string find_tokenizer(const std::string& dir);

// The val split from its start: the shards in name order, its first `needed` tokens (0: all).
std::vector<uint16_t> read_val_tokens(const std::vector<std::string>& shards, size_t needed);

}  // namespace pgolf::cli

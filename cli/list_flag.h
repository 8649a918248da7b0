// List-valued flags (--codecs, --compressors, --candidates): each occurrence split at ';',
// since codec specs contain commas ("kmeans:k=64,method=ecsq").
#pragma once
#include "cli/options.h"
#include <string>
#include <vector>

namespace pgolf::cli {

// Every value of the flag, in order, empty parts dropped; none when the flag is absent.
std::vector<std::string> list_flag_values(const cxxopts::ParseResult& args, const std::string& flag);

}  // namespace pgolf::cli

#include "cli/list_flag.h"

#include <algorithm>

#include "core/error.h"

namespace pgolf::cli {

std::vector<std::string> list_flag_values(const cxxopts::ParseResult& args, const std::string& flag) {
  std::vector<std::string> out;
  if (!args.count(flag)) return out;
  for (const auto& value : args[flag].as<std::vector<std::string>>())
    for (size_t start = 0, end; start <= value.size(); start = end + 1) {
      end = std::min(value.find(';', start), value.size());
      if (end > start) out.push_back(value.substr(start, end - start));
    }
  require(!out.empty(), "--" + flag + " is empty: give at least one value");
  return out;
}

}  // namespace pgolf::cli

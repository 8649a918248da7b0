#include "cli/options.h"

#include <iostream>

namespace pgolf::cli {

bool parse_or_help(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args,
                   const std::vector<std::string>& groups, const std::string& footer) {
  options.add_options()("h,help", "show this help");
  args = options.parse(argc, argv);
  if (!args.count("help")) return true;
  std::cout << (groups.empty() ? options.help() : options.help(groups)) << "\n" << footer;
  return false;
}

}  // namespace pgolf::cli

#include "cli/options.h"

#include <filesystem>
#include <iostream>

#include "core/error.h"

namespace pgolf::cli {

bool parse_or_help(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args,
                   const std::vector<std::string>& groups, const std::string& footer) {
  options.add_options()("h,help", "show this help");
  args = options.parse(argc, argv);
  if (!args.count("help")) {
    // Nothing given is silently dropped: an argument past the positional ones, or a second value
    // of a flag that takes one (the first would be lost).
    const std::string usage = " (" + options.program() + " --help)";
    if (!args.unmatched().empty()) throw InputError("unexpected argument '" + args.unmatched().front() + "'" + usage);
    for (const std::string& group : options.groups())
      for (const auto& option : options.group_help(group).options)
        if (!option.is_container && !option.is_boolean && !option.l.empty() && args.count(option.l.front()) > 1)
          throw InputError("--" + option.l.front() + " given " + std::to_string(args.count(option.l.front())) +
                           " times; it takes one value" + usage);
    return true;
  }
  std::cout << (groups.empty() ? options.help() : options.help(groups)) << "\n" << footer;
  return false;
}

void check_output(const std::string& output, const std::vector<std::string>& reads, bool force,
                  const std::string& force_flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  require(!fs::is_directory(output, ec), output + ": is a folder; name the file to write");
  const fs::path folder = fs::path(output).parent_path().empty() ? fs::path(".") : fs::path(output).parent_path();
  require(fs::is_directory(folder, ec), output + ": its folder " + folder.string() + " does not exist");
  if (!fs::exists(output, ec)) return;
  for (const std::string& read : reads) {
    bool same = fs::equivalent(output, read, ec);
    if (!same && fs::is_directory(read, ec))
      for (const auto& entry : fs::directory_iterator(read, ec)) {
        const std::string name = entry.path().filename().string();
        bool input = false;
        for (const char* suffix : {".safetensors", ".pt", ".pth", ".json", ".pgz", ".bin", ".model"})
          input = input || name.ends_with(suffix);
        same = same || (input && fs::equivalent(output, entry.path(), ec));
      }
    require(!same, output + ": is also an input of this command; write somewhere else");
  }
  require(force, output + ": exists; pass " + force_flag + " to replace it");
}

}  // namespace pgolf::cli

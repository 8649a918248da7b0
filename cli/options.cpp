#include "cli/options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>

#include "core/error.h"
#include "core/progress.h"

namespace {

// An integer as written, else a whole number in exponent form within T's range.
template <typename T>
void parse_count(const std::string& text, T& value) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  T whole{};
  if (auto [at, error] = std::from_chars(begin, end, whole); error == std::errc() && at == end) {
    value = whole;
    return;
  }
  double number = 0;
  const auto [at, error] = std::from_chars(begin, end, number);
  const double lowest = static_cast<double>(std::numeric_limits<T>::min());
  const double past = std::ldexp(1.0, std::numeric_limits<T>::digits);  // the first value past T's range
  if (error != std::errc() || at != end || !std::isfinite(number) || number != std::floor(number) || number < lowest ||
      number >= past)
    throw cxxopts::exceptions::incorrect_argument_type(text);
  value = static_cast<T>(number);
}

}  // namespace

namespace cxxopts::values {
void parse_value(const std::string& text, int& value) { parse_count(text, value); }
void parse_value(const std::string& text, unsigned& value) { parse_count(text, value); }
void parse_value(const std::string& text, long& value) { parse_count(text, value); }
void parse_value(const std::string& text, unsigned long& value) { parse_count(text, value); }
}  // namespace cxxopts::values

namespace pgolf::cli {

bool parse_or_help(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args,
                   const std::vector<std::string>& groups, const std::string& footer) {
  options.add_options()("h,help", "show this help")("q,quiet", "no progress bar or progress lines");
  std::vector<cxxopts::HelpOptionDetails> details;
  std::vector<std::string> long_names;
  for (const std::string& group : options.groups())
    for (const auto& option : options.group_help(group).options)
      if (!option.l.empty()) {
        details.push_back(option);
        long_names.push_back(option.l.front());
      }
  try {
    args = options.parse(argc, argv);
  } catch (const cxxopts::exceptions::no_such_option&) {
    // Name the unknown flag, with the nearest known one.
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (!arg.starts_with("--")) continue;
      const std::string name = arg.substr(2, arg.find('=') == std::string::npos ? std::string::npos : arg.find('=') - 2);
      if (std::find(long_names.begin(), long_names.end(), name) != long_names.end()) continue;
      const std::string near = nearest_name(name, long_names);
      throw InputError("unknown option '--" + name + "'" + (near.empty() ? "" : "; did you mean --" + near + "?") + " (" +
                       options.program() + " --help)");
    }
    throw;
  }
  set_quiet_progress(args.count("quiet") > 0);
  if (!args.count("help")) {
    // Nothing given is silently dropped: an argument past the positional ones, or a second value
    // of a flag that takes one (the first would be lost).
    const std::string usage = " (" + options.program() + " --help)";
    if (!args.unmatched().empty()) throw InputError("unexpected argument '" + args.unmatched().front() + "'" + usage);
    for (const auto& option : details)
      if (!option.is_container && !option.is_boolean && args.count(option.l.front()) > 1)
        throw InputError("--" + option.l.front() + " given " + std::to_string(args.count(option.l.front())) +
                         " times; it takes one value" + usage);
    return true;
  }
  std::cout << (groups.empty() ? options.help() : options.help(groups)) << "\n" << footer;
  return false;
}

std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = name.size() / 3 + 1;
  for (const std::string& candidate : candidates) {
    if (!name.empty() && candidate.starts_with(name)) return candidate;
    // Levenshtein distance, one row at a time.
    std::vector<size_t> row(candidate.size() + 1);
    for (size_t j = 0; j <= candidate.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= name.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= candidate.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (name[i - 1] == candidate[j - 1] ? 0 : 1)});
        diagonal = up;
      }
    }
    if (row.back() < best_distance) best_distance = row.back(), best = candidate;
  }
  return best;
}

void check_output(const std::string& output, const std::vector<std::string>& reads, bool force,
                  const std::string& force_flag) {
  namespace fs = std::filesystem;
  require(output != "-", "writing to standard output ('-') is not supported: name the file to write");
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

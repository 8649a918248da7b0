// What every subcommand's flags share.
#pragma once
#include <string>
#include <vector>

// Counts are read as integers or in exponent form ("1e4", "5e5"), as byte budgets are: pgolf's
// parse for cxxopts' integer flags, declared before cxxopts.hpp so that its templates find it
// (include cxxopts through this header only). Anything that is not a whole number in the
// type's range is refused.
namespace cxxopts::values {
void parse_value(const std::string& text, int& value);
void parse_value(const std::string& text, unsigned& value);
void parse_value(const std::string& text, long& value);
void parse_value(const std::string& text, unsigned long& value);
}  // namespace cxxopts::values

#include <cxxopts.hpp>

namespace pgolf::cli {

// Adds -h/--help and parses argv into args. Returns false after printing the help (the groups
// given, in that order, else every option; then footer) when --help was asked: the subcommand
// then returns 0.
bool parse_or_help(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args,
                   const std::vector<std::string>& groups = {}, const std::string& footer = "");

// Where a subcommand will write, checked before any work: not a folder, in a folder that exists,
// none of the files the command reads (`reads`: files, or folders standing for the checkpoint,
// artifact, shard and tokenizer files in them; refused even with --force, as zstd refuses to
// overwrite its input), and an existing one only with `force`. `force_flag` names the flag.
void check_output(const std::string& output, const std::vector<std::string>& reads, bool force,
                  const std::string& force_flag = "--force");

// The candidate nearest to `name` (fewest single-character edits, at most a third of its length,
// or one that starts with it), for "did you mean"; empty when none is near.
std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates);


}  // namespace pgolf::cli

// What every subcommand's flags share.
#pragma once
#include <cxxopts.hpp>
#include <string>
#include <vector>

namespace pgolf::cli {

// Adds -h/--help and parses argv into args. Returns false after printing the help (the groups
// given, in that order, else every option; then footer) when --help was asked: the subcommand
// then returns 0.
bool parse_or_help(cxxopts::Options& options, int argc, char** argv, cxxopts::ParseResult& args,
                   const std::vector<std::string>& groups = {}, const std::string& footer = "");

}  // namespace pgolf::cli

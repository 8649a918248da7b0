// Spec strings name a codec and its parameters: "int6", "int5:clip=quantile:0.9999",
// "zstd:22", and pipelines "prune:0.03+int6". A stage is NAME[:PARAMS]; PARAMS is a
// comma-separated list of KEY=VALUE or bare positional values; a value may itself contain ':'.
#pragma once
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgolf {

struct SpecStage {
  std::string name;
  std::vector<std::pair<std::string, std::string>> params;  // key "" for positional values

  std::optional<std::string> get(std::string_view key) const;
  std::string to_string() const;
};

// Throws InputError on an empty spec or stage.
std::vector<SpecStage> parse_spec(std::string_view spec);

// Strict number parsing for spec values; InputError naming the spec on failure.
double parse_number(std::string_view text, std::string_view what);
long parse_integer(std::string_view text, std::string_view what);

// The shortest text that reads back to the same number: for spec values, metadata and flag defaults.
template <class T>
std::string number_text(T value) {
  char text[64];
  return std::string(text, std::to_chars(text, text + sizeof text, value).ptr);
}

}  // namespace pgolf

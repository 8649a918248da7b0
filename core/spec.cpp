#include "core/spec.h"

#include <charconv>
#include <cmath>

#include "core/error.h"

namespace pgolf {

namespace {
std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}
}  // namespace

std::optional<std::string> SpecStage::get(std::string_view key) const {
  for (const auto& [k, v] : params)
    if (k == key) return v;
  return std::nullopt;
}

std::string SpecStage::to_string() const {
  std::string s = name;
  for (size_t i = 0; i < params.size(); ++i) {
    s += i == 0 ? ":" : ",";
    s += params[i].first.empty() ? params[i].second : params[i].first + "=" + params[i].second;
  }
  return s;
}

std::vector<SpecStage> parse_spec(std::string_view spec) {
  require(!spec.empty(), "empty codec spec");
  std::vector<SpecStage> stages;
  for (std::string_view text : split(spec, '+')) {
    require(!text.empty(), "codec spec '" + std::string(spec) + "' has an empty stage");
    SpecStage stage;
    size_t colon = text.find(':');
    stage.name = std::string(text.substr(0, colon));
    require(!stage.name.empty(), "codec spec '" + std::string(spec) + "' has a stage without a name");
    if (colon != std::string_view::npos) {
      for (std::string_view param : split(text.substr(colon + 1), ',')) {
        require(!param.empty(), "codec spec '" + std::string(spec) + "' has an empty parameter");
        size_t eq = param.find('=');
        if (eq == std::string_view::npos)
          stage.params.emplace_back("", std::string(param));
        else
          stage.params.emplace_back(std::string(param.substr(0, eq)), std::string(param.substr(eq + 1)));
      }
    }
    stages.push_back(std::move(stage));
  }
  return stages;
}

double parse_number(std::string_view text, std::string_view what) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  require(ec == std::errc() && end == text.data() + text.size() && std::isfinite(value),
          std::string(what) + ": '" + std::string(text) + "' is not a number");
  return value;
}

long parse_integer(std::string_view text, std::string_view what) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  require(ec == std::errc() && end == text.data() + text.size(),
          std::string(what) + ": '" + std::string(text) + "' is not an integer");
  return value;
}

}  // namespace pgolf

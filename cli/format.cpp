#include "cli/format.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/spec.h"

namespace pgolf::cli {

std::string with_commas(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

uint64_t parse_byte_count(const std::string& text) {
  if (text == "pg") return 16'000'000;  // Parameter Golf's cap on code plus compressed model
  struct Unit { const char* suffix; double factor; };
  constexpr Unit kUnits[] = {{"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"KB", 1e3}, {"B", 1}};
  std::string number = text;
  double factor = 1;
  for (const auto& u : kUnits) {
    std::string s = u.suffix;
    if (number.size() > s.size() && number.ends_with(s)) {
      number.resize(number.size() - s.size());
      factor = u.factor;
      break;
    }
  }
  double value = parse_number(number, "byte count '" + text + "'") * factor;
  require(value >= 1 && value < 1e15, "byte count '" + text + "' is out of range");
  return static_cast<uint64_t>(std::llround(value));
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomic(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), true);
}

}  // namespace pgolf::cli

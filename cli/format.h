// Number formatting and text output shared by the subcommands.
#pragma once
#include <cstdint>
#include <string>

namespace pgolf::cli {

std::string with_commas(uint64_t n);   // 11344770 -> "11,344,770"
// "16000000", "16MB", "15.9MB", "500kB" (decimal units); "pg": Parameter Golf's 16,000,000.
uint64_t parse_byte_count(const std::string& text);
void write_text(const std::string& path, const std::string& text);  // atomically, replacing what is there

}  // namespace pgolf::cli

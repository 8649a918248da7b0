#include "codecs/symbol_histogram.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace pgolf {

SymbolHistogram::SymbolHistogram(int symbol_bytes)
    : symbol_bytes_(symbol_bytes), count_(symbol_bytes == 2 ? 65536 : 256, 0) {
  if (symbol_bytes != 1 && symbol_bytes != 2)
    throw std::invalid_argument("SymbolHistogram: symbols of 1 or 2 bytes, not " + std::to_string(symbol_bytes));
}

void SymbolHistogram::add(std::span<const uint8_t> bytes) {
  if (bytes.size() % symbol_bytes_ != 0) throw std::invalid_argument("SymbolHistogram: a partial symbol");
  if (symbol_bytes_ == 1) {
    for (uint8_t b : bytes) ++count_[b];
    return;
  }
  for (size_t i = 0; i < bytes.size(); i += 2) ++count_[bytes[i] | bytes[i + 1] << 8];
}

void SymbolHistogram::add(const SymbolHistogram& other) {
  if (other.symbol_bytes_ != symbol_bytes_) throw std::invalid_argument("SymbolHistogram: different symbol widths");
  for (size_t i = 0; i < count_.size(); ++i) count_[i] += other.count_[i];
}

uint64_t SymbolHistogram::total() const {
  uint64_t n = 0;
  for (uint64_t c : count_) n += c;
  return n;
}

double SymbolHistogram::entropy_bits_per_symbol() const {
  const uint64_t n = total();
  return n == 0 ? 0.0 : 8 * entropy_bytes() / static_cast<double>(n);
}

double SymbolHistogram::entropy_bytes() const {
  const double n = static_cast<double>(total());
  double bits = 0;
  for (uint64_t c : count_)
    if (c > 0) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / n);
  return bits / 8;
}

}  // namespace pgolf

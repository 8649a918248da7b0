#include "codecs/byte_histogram.h"

#include <cmath>

namespace pgolf {

void ByteHistogram::add(std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes) ++count[b];
}

void ByteHistogram::add(const ByteHistogram& other) {
  for (size_t i = 0; i < count.size(); ++i) count[i] += other.count[i];
}

uint64_t ByteHistogram::total() const {
  uint64_t n = 0;
  for (uint64_t c : count) n += c;
  return n;
}

double ByteHistogram::entropy_bytes() const {
  double n = static_cast<double>(total()), bits = 0;
  for (uint64_t c : count)
    if (c > 0) bits -= static_cast<double>(c) * std::log2(static_cast<double>(c) / n);
  return bits / 8;
}

}  // namespace pgolf

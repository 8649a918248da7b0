// Symbol counts of a stream and its order-0 entropy: the size a memoryless entropy coder would
// reach, the yardstick for how well a byte codec does on symbol streams. A symbol is a byte, or a
// 2-byte little-endian integer (the wide alphabets ECSQ writes and rans codes as one symbol).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace pgolf {

class SymbolHistogram {
 public:
  explicit SymbolHistogram(int symbol_bytes = 1);  // 1 or 2

  void add(std::span<const uint8_t> bytes);  // whole symbols only
  void add(const SymbolHistogram& other);    // of the same symbol width
  uint64_t total() const;                    // symbols counted
  double entropy_bits_per_symbol() const;    // H(p)
  double entropy_bytes() const;              // total * H(p) / 8
  uint64_t count(uint32_t symbol) const { return count_[symbol]; }

 private:
  int symbol_bytes_;
  std::vector<uint64_t> count_;
};

}  // namespace pgolf

// Byte counts of a stream, and its order-0 entropy: the size a memoryless entropy coder would
// reach, the yardstick for how well a byte codec does on symbol streams.
#pragma once
#include <array>
#include <cstdint>
#include <span>

namespace pgolf {

struct ByteHistogram {
  std::array<uint64_t, 256> count{};

  void add(std::span<const uint8_t> bytes);
  void add(const ByteHistogram& other);
  uint64_t total() const;
  double entropy_bytes() const;  // total * H(p) / 8, H in bits per byte
};

}  // namespace pgolf

// CRC-32 (zlib's), the checksum of every artifact stream.
#pragma once
#include <cstdint>
#include <span>

namespace pgolf {
uint32_t crc32_of(std::span<const uint8_t> bytes);
}

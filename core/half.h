// IEEE half (fp16) and bfloat16 conversions, round to nearest even, NaN kept NaN.
#pragma once
#include <bit>
#include <cstdint>

namespace pgolf {

inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float fp16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    // zero or subnormal: man * 2^-24
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t float_to_fp16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) {                                // NaN: keep the payload's top bits, stay NaN
    uint16_t payload = static_cast<uint16_t>((a >> 13) & 0x3ffu);
    return sign | 0x7c00u | (payload ? payload : 0x200u);
  }
  if (a >= 0x477ff000u) return sign | 0x7c00u;          // rounds to >= 65520: inf
  if (a < 0x38800000u) {                                // below the smallest normal: subnormal or zero
    // add 0.5 in the bit position of 2^-25 by going through float arithmetic (exact, RNE)
    float v = std::bit_cast<float>(a) + 0.5f;           // 0.5 = 2^-1 aligns the mantissa to 2^-24 ulps
    return sign | static_cast<uint16_t>(std::bit_cast<uint32_t>(v) - 0x3f000000u);
  }
  uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);     // round to nearest even at bit 13
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

}  // namespace pgolf

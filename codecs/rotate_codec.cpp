// "rotate:W": a size-preserving transform for streams of W-byte little-endian floats (W = 2, 4 or
// 8) that rotates each element left by one bit: the sign moves to the lowest bit, so the top byte
// of a bf16, fp32 or fp64 holds exactly its exponent (of an fp16, its exponent and 3 mantissa bits).
// Before "shuffle:W" it groups bytes as sign+mantissa planes and one exponent plane, as ZipNN does:
// "rotate:2+shuffle:2+rans" is the lossless mode's float coder.
#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class RotateCodec final : public ByteCodec {
 public:
  explicit RotateCodec(size_t width) : width_(width) {}
  std::string spec() const override { return "rotate:" + std::to_string(width_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override { return rotated(raw, true); }

  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(encoded.size() == raw_size, "corrupt rotated stream: " + std::to_string(encoded.size()) + " bytes, expected " +
                                            std::to_string(raw_size));
    return rotated(encoded, false);
  }

 private:
  // Whole elements rotate; a tail shorter than an element is copied.
  std::vector<uint8_t> rotated(std::span<const uint8_t> in, bool left) const {
    std::vector<uint8_t> out(in.begin(), in.end());
    const int bits = static_cast<int>(8 * width_);
    for (size_t at = 0; at + width_ <= in.size(); at += width_) {
      uint64_t v = 0;
      for (size_t k = 0; k < width_; ++k) v |= uint64_t{in[at + k]} << (8 * k);
      uint64_t top = uint64_t{1} << (bits - 1);
      v = left ? (v << 1 | v >> (bits - 1)) : (v >> 1 | (v & 1) * top);
      for (size_t k = 0; k < width_; ++k) out[at + k] = static_cast<uint8_t>(v >> (8 * k));
    }
    return out;
  }

  size_t width_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_rotate_codec(const SpecStage& stage) {
  return std::make_unique<RotateCodec>(element_width_param(stage));
}

}  // namespace pgolf

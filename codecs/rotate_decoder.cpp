// The inverse of "rotate:W" (rotate_codec.cpp): each element rotated right by one bit.
#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class RotateDecoder final : public ByteDecoder {
 public:
  explicit RotateDecoder(size_t width) : width_(width) {}
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(encoded.size() == raw_size, "corrupt rotated stream: " + std::to_string(encoded.size()) + " bytes, expected " +
                                            std::to_string(raw_size));
    return rotate_elements(encoded, width_, false);
  }

 private:
  size_t width_;
};

}  // namespace

std::vector<uint8_t> rotate_elements(std::span<const uint8_t> in, size_t width, bool left) {
  std::vector<uint8_t> out(in.begin(), in.end());
  const int bits = static_cast<int>(8 * width);
  for (size_t at = 0; at + width <= in.size(); at += width) {
    uint64_t v = 0;
    for (size_t k = 0; k < width; ++k) v |= uint64_t{in[at + k]} << (8 * k);
    uint64_t top = uint64_t{1} << (bits - 1);
    v = left ? (v << 1 | v >> (bits - 1)) : (v >> 1 | (v & 1) * top);
    for (size_t k = 0; k < width; ++k) out[at + k] = static_cast<uint8_t>(v >> (8 * k));
  }
  return out;
}

std::unique_ptr<ByteDecoder> make_rotate_decoder(const SpecStage& stage) {
  return std::make_unique<RotateDecoder>(element_width_param(stage));
}

}  // namespace pgolf

// "rotate:W": a size-preserving transform for streams of W-byte little-endian floats (W = 2, 4 or
// 8) that rotates each element left by one bit: the sign moves to the lowest bit, so the top byte
// of a bf16, fp32 or fp64 holds exactly its exponent (of an fp16, its exponent and 3 mantissa bits).
// Before "shuffle:W" it groups bytes as sign+mantissa planes and one exponent plane, as ZipNN does:
// "rotate:2+shuffle:2+rans" is the lossless mode's float coder.
#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {

class RotateCodec final : public ByteCodec {
 public:
  explicit RotateCodec(size_t width) : width_(width) {}
  std::string spec() const override { return "rotate:" + std::to_string(width_); }
  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override { return rotate_elements(raw, width_, true); }

 private:
  size_t width_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_rotate_codec(const SpecStage& stage) {
  return std::make_unique<RotateCodec>(element_width_param(stage));
}

}  // namespace pgolf

// "shuffle:W": a size-preserving transform for streams of W-byte floats (W = 2, 4 or 8) that
// groups byte k of every element together (all sign/exponent bytes, then all mantissa bytes),
// as ZipNN and DFloat11 do: exponents are few and repeat, mantissas are noise, and a compressor
// that sees them apart codes each better. Chained before a compressor: "shuffle:2+zstd:22".
#include <algorithm>

#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {

class ShuffleCodec final : public ByteCodec {
 public:
  explicit ShuffleCodec(size_t width) : width_(width) {}
  std::string spec() const override { return "shuffle:" + std::to_string(width_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    std::vector<uint8_t> out(raw.size());
    size_t n = raw.size() / width_, tail = n * width_;
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < width_; ++k) out[k * n + i] = raw[i * width_ + k];
    std::copy(raw.begin() + static_cast<std::ptrdiff_t>(tail), raw.end(), out.begin() + static_cast<std::ptrdiff_t>(tail));
    return out;
  }

 private:
  size_t width_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_shuffle_codec(const SpecStage& stage) {
  return std::make_unique<ShuffleCodec>(element_width_param(stage));
}

}  // namespace pgolf

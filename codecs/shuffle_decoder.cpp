// The inverse of "shuffle:W" (shuffle_codec.cpp): byte k of element i back from plane k.
#include <algorithm>

#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class ShuffleDecoder final : public ByteDecoder {
 public:
  explicit ShuffleDecoder(size_t width) : width_(width) {}

  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(encoded.size() == raw_size, "corrupt shuffled stream: " + std::to_string(encoded.size()) + " bytes, expected " +
                                            std::to_string(raw_size));
    std::vector<uint8_t> out(raw_size);
    size_t n = raw_size / width_, tail = n * width_;
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < width_; ++k) out[i * width_ + k] = encoded[k * n + i];
    std::copy(encoded.begin() + static_cast<std::ptrdiff_t>(tail), encoded.end(), out.begin() + static_cast<std::ptrdiff_t>(tail));
    return out;
  }

 private:
  size_t width_;
};

}  // namespace

size_t element_width_param(const SpecStage& stage) {
  long width = stage.params.size() == 1 ? parse_integer(stage.params[0].second, stage.name + " width") : 0;
  require(width == 2 || width == 4 || width == 8, stage.name + " takes an element width of 2, 4 or 8, e.g. " + stage.name +
                                                      ":2 (got '" + stage.to_string() + "')");
  return static_cast<size_t>(width);
}

std::unique_ptr<ByteDecoder> make_shuffle_decoder(const SpecStage& stage) {
  return std::make_unique<ShuffleDecoder>(element_width_param(stage));
}

}  // namespace pgolf

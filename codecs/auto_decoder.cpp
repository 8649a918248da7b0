// The decoder of "auto" on its own (auto_codec.cpp): the chosen candidate's index, then its bytes.
#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class AutoDecoder final : public ByteDecoder {
 public:
  explicit AutoDecoder(int width) {
    for (const auto& spec : auto_candidates(width)) candidates_.push_back(make_byte_decoder(spec));
  }
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(!encoded.empty() && encoded[0] < candidates_.size(), "corrupt auto stream: no valid codec index");
    return candidates_[encoded[0]]->decode(encoded.subspan(1), raw_size);
  }

 private:
  std::vector<std::unique_ptr<ByteDecoder>> candidates_;
};

}  // namespace

int auto_width(const SpecStage& stage) {
  auto text = stage.get("width");
  long width = text ? parse_integer(*text, "auto symbol width") : 1;
  require(stage.params.size() == (text ? 1u : 0u) && (width == 1 || width == 2 || width == 4 || width == 8),
          "auto takes an optional symbol width of 1, 2, 4 or 8 bytes, e.g. auto or auto:width=2 (got '" +
              stage.to_string() + "')");
  return static_cast<int>(width);
}

// rans codes 2-byte symbols as one alphabet; every other width goes behind a byte shuffle.
std::vector<std::string> auto_candidates(int width) {
  const std::string shuffle = width == 1 ? "" : "shuffle:" + std::to_string(width) + "+";
  return {width == 2 ? "rans:width=2" : shuffle + "rans", shuffle + "zstd:22", shuffle + "zlib:9"};
}

std::unique_ptr<ByteDecoder> make_auto_decoder(const SpecStage& stage) { return std::make_unique<AutoDecoder>(auto_width(stage)); }

}  // namespace pgolf

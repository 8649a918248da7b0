// The decoder of "auto" on its own (auto_codec.cpp): the chosen candidate's index, then its bytes.
#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class AutoDecoder final : public ByteDecoder {
 public:
  explicit AutoDecoder(AutoSettings settings) {
    for (const auto& spec : auto_candidates(settings)) candidates_.push_back(make_byte_decoder(spec));
  }
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(!encoded.empty() && encoded[0] < candidates_.size(), "corrupt auto stream: no valid codec index");
    return candidates_[encoded[0]]->decode(encoded.subspan(1), raw_size);
  }

 private:
  std::vector<std::unique_ptr<ByteDecoder>> candidates_;
};

}  // namespace

std::string AutoSettings::spec() const {
  std::string params = width == 1 ? "" : "width=" + std::to_string(width);
  if (python) params += params.empty() ? "for=python" : ",for=python";
  return params.empty() ? "auto" : "auto:" + params;
}

AutoSettings auto_settings(const SpecStage& stage) {
  auto width_text = stage.get("width");
  auto for_text = stage.get("for");
  long width = width_text ? parse_integer(*width_text, "auto symbol width") : 1;
  require(stage.params.size() == (width_text ? 1u : 0u) + (for_text ? 1u : 0u) &&
              (width == 1 || width == 2 || width == 4 || width == 8) && (!for_text || *for_text == "python"),
          "auto takes an optional symbol width of 1, 2, 4 or 8 bytes and for=python (only what the Python decoder "
          "reads), e.g. auto, auto:width=2 or auto:for=python (got '" + stage.to_string() + "')");
  return {static_cast<int>(width), for_text.has_value()};
}

// rans codes 2-byte symbols as one alphabet; every other width goes behind a byte shuffle. For the
// Python decoder: vrans (bytes only), zlib and xz.
std::vector<std::string> auto_candidates(const AutoSettings& settings) {
  const int width = settings.width;
  const std::string shuffle = width == 1 ? "" : "shuffle:" + std::to_string(width) + "+";
  if (settings.python) return {shuffle + "vrans", shuffle + "zlib:9", shuffle + "xz:9"};
  return {width == 2 ? "rans:width=2" : shuffle + "rans", shuffle + "zstd:22", shuffle + "zlib:9"};
}

std::unique_ptr<ByteDecoder> make_auto_decoder(const SpecStage& stage) {
  return std::make_unique<AutoDecoder>(auto_settings(stage));
}

}  // namespace pgolf

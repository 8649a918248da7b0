// The decoder of "none": the stored bytes, checked for their size.
#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {
class NoneDecoder final : public ByteDecoder {
 public:
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(encoded.size() == raw_size, "corrupt stored stream: " + std::to_string(encoded.size()) +
                                            " bytes, expected " + std::to_string(raw_size));
    return {encoded.begin(), encoded.end()};
  }
};
}  // namespace

void require_no_params(const SpecStage& stage) { require(stage.params.empty(), "'" + stage.name + "' takes no parameters"); }

std::unique_ptr<ByteDecoder> make_none_decoder(const SpecStage& stage) {
  require_no_params(stage);
  return std::make_unique<NoneDecoder>();
}

}  // namespace pgolf

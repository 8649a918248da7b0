// "none": bytes stored as they are (for measuring the raw size, and for incompressible data).
#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {
class NoneCodec final : public ByteCodec {
 public:
  std::string spec() const override { return "none"; }
  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override { return {raw.begin(), raw.end()}; }
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(encoded.size() == raw_size, "corrupt stored stream: " + std::to_string(encoded.size()) +
                                            " bytes, expected " + std::to_string(raw_size));
    return {encoded.begin(), encoded.end()};
  }
};
}  // namespace

std::unique_ptr<ByteCodec> make_none_codec(const SpecStage& stage) {
  require(stage.params.empty(), "'none' takes no parameters");
  return std::make_unique<NoneCodec>();
}

}  // namespace pgolf

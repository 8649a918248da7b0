// "none": bytes stored as they are (for measuring the raw size, and for incompressible data).
#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {
class NoneCodec final : public ByteCodec {
 public:
  std::string spec() const override { return "none"; }
  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override { return {raw.begin(), raw.end()}; }
};
}  // namespace

std::unique_ptr<ByteCodec> make_none_codec(const SpecStage& stage) {
  require_no_params(stage);
  return std::make_unique<NoneCodec>();
}

}  // namespace pgolf

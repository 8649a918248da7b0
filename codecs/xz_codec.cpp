// xz (LZMA2 in the .xz container, no integrity check: the artifact checksums every stream) at
// presets 0..9: what Python's standard library decodes (lzma), and what Parameter Golf's records
// compress their code and weights with.
#include <lzma.h>

#include <stdexcept>

#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {

class XzCodec final : public ByteCodec {
 public:
  explicit XzCodec(int preset) : preset_(preset) {}
  std::string spec() const override { return "xz:" + std::to_string(preset_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    std::vector<uint8_t> out(lzma_stream_buffer_bound(raw.size()));
    size_t n = 0;
    lzma_ret rc = lzma_easy_buffer_encode(static_cast<uint32_t>(preset_) | LZMA_PRESET_EXTREME, LZMA_CHECK_NONE, nullptr,
                                          raw.data(), raw.size(), out.data(), &n, out.size());
    if (rc != LZMA_OK) throw std::runtime_error("xz compression failed: " + std::to_string(rc));
    out.resize(n);
    return out;
  }

 private:
  int preset_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_xz_codec(const SpecStage& stage) { return std::make_unique<XzCodec>(xz_preset(stage)); }

}  // namespace pgolf

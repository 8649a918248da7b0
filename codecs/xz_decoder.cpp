// The xz decoder: one .xz stream that decodes to exactly the recorded size.
#include <lzma.h>

#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr uint64_t kMemoryLimit = uint64_t{1} << 30;  // preset 9's dictionary is 64 MiB

class XzDecoder final : public ByteDecoder {
 public:
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    // LZMA2 expands at most about 7000:1 (a chunk's 2 MiB from a few bytes), so a larger claim is
    // corrupt; checked before allocating.
    require(raw_size <= encoded.size() * 8192 + 4096, "corrupt xz stream: " + std::to_string(encoded.size()) +
                                                           " bytes cannot hold " + std::to_string(raw_size));
    std::vector<uint8_t> out(raw_size);
    uint64_t memory_limit = kMemoryLimit;
    size_t in_pos = 0, out_pos = 0;
    lzma_ret rc = lzma_stream_buffer_decode(&memory_limit, 0, nullptr, encoded.data(), &in_pos, encoded.size(), out.data(),
                                            &out_pos, out.size());
    require(rc == LZMA_OK, "corrupt xz stream (liblzma error " + std::to_string(rc) + ")");
    require(in_pos == encoded.size() && out_pos == raw_size,
            "corrupt xz stream: decoded " + std::to_string(out_pos) + " bytes, expected " + std::to_string(raw_size));
    return out;
  }
};

}  // namespace

int xz_preset(const SpecStage& stage) {
  long preset = stage.params.empty() ? 9 : parse_integer(stage.params[0].second, "xz preset");
  require(stage.params.size() <= 1 && preset >= 0 && preset <= 9,
          "xz takes one preset from 0 to 9 (always extreme), e.g. xz:9 (got '" + stage.to_string() + "')");
  return static_cast<int>(preset);
}

std::unique_ptr<ByteDecoder> make_xz_decoder(const SpecStage& stage) {
  xz_preset(stage);
  return std::make_unique<XzDecoder>();
}

}  // namespace pgolf

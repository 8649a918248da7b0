// The zlib decoder (inflate with the zlib wrapper).
#include <zlib.h>

#include "codecs/byte_decoder_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class ZlibDecoder final : public ByteDecoder {
 public:
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    // deflate never expands more than 1032:1, so a larger claim is corrupt; checked before allocating
    require(raw_size <= encoded.size() * 1032 + 64, "corrupt zlib stream: " + std::to_string(encoded.size()) +
                                                         " bytes cannot hold " + std::to_string(raw_size));
    std::vector<uint8_t> out(raw_size);
    uLongf n = raw_size;
    uLong consumed = encoded.size();
    int rc = uncompress2(out.data(), &n, encoded.data(), &consumed);
    require(rc == Z_OK, "corrupt zlib stream (zlib error " + std::to_string(rc) + ")");
    require(n == raw_size && consumed == encoded.size(),
            "corrupt zlib stream: decoded " + std::to_string(n) + " bytes, expected " + std::to_string(raw_size));
    return out;
  }

};

}  // namespace

int zlib_level(const SpecStage& stage) {
  long level = stage.params.empty() ? 9 : parse_integer(stage.params[0].second, "zlib level");
  require(stage.params.size() <= 1 && level >= 1 && level <= 9,
          "zlib takes one level from 1 to 9, e.g. zlib:9 (got '" + stage.to_string() + "')");
  return static_cast<int>(level);
}

std::unique_ptr<ByteDecoder> make_zlib_decoder(const SpecStage& stage) {
  zlib_level(stage);
  return std::make_unique<ZlibDecoder>();
}

}  // namespace pgolf

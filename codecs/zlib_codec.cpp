// zlib (deflate with the zlib wrapper) at levels 1..9: what Parameter Golf's baseline used.
#include <zlib.h>

#include <limits>

#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

class ZlibCodec final : public ByteCodec {
 public:
  explicit ZlibCodec(int level) : level_(level) {}
  std::string spec() const override { return "zlib:" + std::to_string(level_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    if (raw.size() > std::numeric_limits<uLong>::max()) throw std::runtime_error("zlib: input too large");
    uLongf n = compressBound(raw.size());
    std::vector<uint8_t> out(n);
    int rc = compress2(out.data(), &n, raw.data(), raw.size(), level_);
    if (rc != Z_OK) throw std::runtime_error("zlib compression failed: " + std::to_string(rc));
    out.resize(n);
    return out;
  }

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

 private:
  int level_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_zlib_codec(const SpecStage& stage) {
  long level = stage.params.empty() ? 9 : parse_integer(stage.params[0].second, "zlib level");
  require(stage.params.size() <= 1 && level >= 1 && level <= 9,
          "zlib takes one level from 1 to 9, e.g. zlib:9 (got '" + stage.to_string() + "')");
  return std::make_unique<ZlibCodec>(static_cast<int>(level));
}

}  // namespace pgolf

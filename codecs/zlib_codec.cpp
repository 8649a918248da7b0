// zlib (deflate with the zlib wrapper) at levels 1..9: what Parameter Golf's baseline used.
#include <zlib.h>

#include <limits>

#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"
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

 private:
  int level_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_zlib_codec(const SpecStage& stage) { return std::make_unique<ZlibCodec>(zlib_level(stage)); }

}  // namespace pgolf

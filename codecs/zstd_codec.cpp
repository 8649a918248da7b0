// zstd at levels 1..22, with a window that covers the whole input (up to 2^27, which every
// zstd decoder accepts by default) and long-distance matching for inputs over 8 MiB, so repeats
// across a large symbol stream are still found.
#include <zstd.h>

#include <algorithm>
#include <bit>

#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr int kMaxWindowLog = 27;
constexpr size_t kLongInput = size_t{8} << 20;

class ZstdCodec final : public ByteCodec {
 public:
  explicit ZstdCodec(int level) : level_(level) {}
  std::string spec() const override { return "zstd:" + std::to_string(level_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    ZSTD_CCtx* ctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level_);
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 0);  // the artifact checksums every stream itself
    // A window that covers the whole input; long-distance matching only for large inputs.
    int window_log = std::clamp<int>(std::bit_width(raw.size()), 10, kMaxWindowLog);
    ZSTD_CCtx_setParameter(ctx, ZSTD_c_windowLog, window_log);
    if (raw.size() > kLongInput) ZSTD_CCtx_setParameter(ctx, ZSTD_c_enableLongDistanceMatching, 1);
    std::vector<uint8_t> out(ZSTD_compressBound(raw.size()));
    size_t n = ZSTD_compress2(ctx, out.data(), out.size(), raw.data(), raw.size());
    ZSTD_freeCCtx(ctx);
    if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
    out.resize(n);
    return out;
  }

  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    // Check the frame's declared size before allocating, so a tiny corrupt stream cannot ask
    // for gigabytes.
    unsigned long long declared = ZSTD_getFrameContentSize(encoded.data(), encoded.size());
    require(declared == raw_size, "corrupt zstd stream: its frame does not declare the expected " +
                                      std::to_string(raw_size) + " bytes");
    std::vector<uint8_t> out(raw_size);
    ZSTD_DCtx* ctx = ZSTD_createDCtx();
    ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, kMaxWindowLog);
    size_t n = ZSTD_decompressDCtx(ctx, out.data(), out.size(), encoded.data(), encoded.size());
    ZSTD_freeDCtx(ctx);
    require(!ZSTD_isError(n), std::string("corrupt zstd stream: ") + (ZSTD_isError(n) ? ZSTD_getErrorName(n) : ""));
    require(n == raw_size, "corrupt zstd stream: decoded " + std::to_string(n) + " bytes, expected " +
                               std::to_string(raw_size));
    return out;
  }

 private:
  int level_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_zstd_codec(const SpecStage& stage) {
  long level = stage.params.empty() ? 19 : parse_integer(stage.params[0].second, "zstd level");
  require(stage.params.size() <= 1 && level >= 1 && level <= 22,
          "zstd takes one level from 1 to 22, e.g. zstd:22 (got '" + stage.to_string() + "')");
  return std::make_unique<ZstdCodec>(static_cast<int>(level));
}

}  // namespace pgolf

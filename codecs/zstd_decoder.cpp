// The zstd decoder of what zstd_codec.cpp writes: independent frames back to back.
#include <zstd.h>

#include "codecs/byte_decoder_registry.h"
#include "core/error.h"
#include "core/parallel.h"

namespace pgolf {

namespace {

class ZstdDecoder final : public ByteDecoder {
 public:
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    // Walk the frames first: every frame must declare its size, and the sizes must add up to
    // raw_size before anything is allocated, so a tiny corrupt stream cannot ask for gigabytes.
    std::vector<std::span<const uint8_t>> frames;
    std::vector<size_t> sizes;
    size_t declared_total = 0;
    for (size_t at = 0; at < encoded.size() || frames.empty();) {
      auto rest = encoded.subspan(at);
      size_t frame = ZSTD_findFrameCompressedSize(rest.data(), rest.size());
      require(!ZSTD_isError(frame), "corrupt zstd stream: a frame is cut short or malformed");
      unsigned long long declared = ZSTD_getFrameContentSize(rest.data(), rest.size());
      require(declared != ZSTD_CONTENTSIZE_ERROR && declared != ZSTD_CONTENTSIZE_UNKNOWN &&
                  declared <= raw_size - declared_total,
              "corrupt zstd stream: its frames do not declare the expected " + std::to_string(raw_size) + " bytes");
      frames.push_back(rest.first(frame));
      sizes.push_back(static_cast<size_t>(declared));
      declared_total += static_cast<size_t>(declared);
      at += frame;
    }
    require(declared_total == raw_size,
            "corrupt zstd stream: its frames declare " + std::to_string(declared_total) + " bytes, expected " + std::to_string(raw_size));
    std::vector<uint8_t> out(raw_size);
    std::vector<size_t> starts(frames.size());
    for (size_t i = 1; i < frames.size(); ++i) starts[i] = starts[i - 1] + sizes[i - 1];
    parallel_for(frames.size(), [&](size_t i) {
      ZSTD_DCtx* ctx = ZSTD_createDCtx();
      ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, kZstdMaxWindowLog);
      size_t n = ZSTD_decompressDCtx(ctx, out.data() + starts[i], sizes[i], frames[i].data(), frames[i].size());
      ZSTD_freeDCtx(ctx);
      if (ZSTD_isError(n) || n != sizes[i]) throw InputError("corrupt zstd stream: a frame does not decode to its declared size");
    });
    return out;
  }

};

}  // namespace

int zstd_level(const SpecStage& stage) {
  long level = stage.params.empty() ? 19 : parse_integer(stage.params[0].second, "zstd level");
  require(stage.params.size() <= 1 && level >= 1 && level <= 22,
          "zstd takes one level from 1 to 22, e.g. zstd:22 (got '" + stage.to_string() + "')");
  return static_cast<int>(level);
}

std::unique_ptr<ByteDecoder> make_zstd_decoder(const SpecStage& stage) {
  zstd_level(stage);
  return std::make_unique<ZstdDecoder>();
}

}  // namespace pgolf

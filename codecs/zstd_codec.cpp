// zstd at levels 1..22. Large inputs are cut into 4 MiB chunks compressed in parallel as
// independent frames, back to back: the chunk size is fixed, so the bytes do not depend on
// the machine, and on quantized symbols (whose redundancy is in their distribution, not in
// long repeats) it costs about 0.01% (1,172 bytes on base9's 11.3 MB of int6 symbols).
#include <zstd.h>

#include <algorithm>
#include <bit>

#include "codecs/byte_codec_registry.h"
#include "core/error.h"
#include "core/parallel.h"

namespace pgolf {

namespace {

constexpr size_t kChunkBytes = size_t{4} << 20;
constexpr int kMaxWindowLog = 27;

std::vector<uint8_t> compress_frame(std::span<const uint8_t> raw, int level) {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 0);  // the artifact checksums every stream itself
  // A window that covers the whole chunk, whatever the level's default.
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_windowLog, std::clamp<int>(std::bit_width(raw.size()), 10, kMaxWindowLog));
  std::vector<uint8_t> out(ZSTD_compressBound(raw.size()));
  size_t n = ZSTD_compress2(ctx, out.data(), out.size(), raw.data(), raw.size());
  ZSTD_freeCCtx(ctx);
  if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

class ZstdCodec final : public ByteCodec {
 public:
  explicit ZstdCodec(int level) : level_(level) {}
  std::string spec() const override { return "zstd:" + std::to_string(level_); }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    size_t chunks = std::max<size_t>(1, (raw.size() + kChunkBytes - 1) / kChunkBytes);
    std::vector<std::vector<uint8_t>> frames(chunks);
    parallel_for(chunks, [&](size_t i) {
      frames[i] = compress_frame(raw.subspan(i * kChunkBytes, std::min(kChunkBytes, raw.size() - i * kChunkBytes)), level_);
    });
    std::vector<uint8_t> out;
    for (const auto& f : frames) out.insert(out.end(), f.begin(), f.end());
    return out;
  }

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
      ZSTD_DCtx_setParameter(ctx, ZSTD_d_windowLogMax, kMaxWindowLog);
      size_t n = ZSTD_decompressDCtx(ctx, out.data() + starts[i], sizes[i], frames[i].data(), frames[i].size());
      ZSTD_freeDCtx(ctx);
      if (ZSTD_isError(n) || n != sizes[i]) throw InputError("corrupt zstd stream: a frame does not decode to its declared size");
    });
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

// zstd at levels 1..22. Large inputs are cut into 4 MiB chunks compressed in parallel as
// independent frames, back to back: the chunk size is fixed, so the bytes do not depend on
// the machine, and on quantized symbols (whose redundancy is in their distribution, not in
// long repeats) it costs about 0.01% (1,172 bytes on base9's 11.3 MB of int6 symbols).
#include <zstd.h>

#include <algorithm>
#include <bit>

#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"
#include "core/error.h"
#include "core/parallel.h"

namespace pgolf {

namespace {

constexpr size_t kChunkBytes = size_t{4} << 20;

std::vector<uint8_t> compress_frame(std::span<const uint8_t> raw, int level) {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_checksumFlag, 0);  // the artifact checksums every stream itself
  // A window that covers the whole chunk, whatever the level's default.
  ZSTD_CCtx_setParameter(ctx, ZSTD_c_windowLog, std::clamp<int>(std::bit_width(raw.size()), 10, kZstdMaxWindowLog));
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

 private:
  int level_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_zstd_codec(const SpecStage& stage) { return std::make_unique<ZstdCodec>(zstd_level(stage)); }

}  // namespace pgolf

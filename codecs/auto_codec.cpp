// "auto[:width=W]": the smallest of rans, zstd:22 and zlib:9 on each stream (each as it codes
// W-byte symbols). An artifact records the chosen codec for each stream group (encode_named), so
// decoding never needs this one; on its own, its output is the chosen codec's index in one byte,
// then that codec's output (auto_decoder.cpp).
#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {

class AutoCodec final : public ByteCodec {
 public:
  explicit AutoCodec(int width) : width_(width) {
    for (const auto& spec : auto_candidates(width)) candidates_.push_back(make_byte_codec(spec));
  }
  std::string spec() const override { return width_ == 1 ? "auto" : "auto:width=" + std::to_string(width_); }
  std::string spec_for_symbols(int width) const override { return AutoCodec(width).spec(); }

  std::pair<std::string, std::vector<uint8_t>> encode_named(std::span<const uint8_t> raw) const override {
    auto [index, encoded] = smallest(raw);
    return {candidates_[index]->spec(), std::move(encoded)};
  }
  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    auto [index, encoded] = smallest(raw);
    encoded.insert(encoded.begin(), static_cast<uint8_t>(index));
    return encoded;
  }

 private:
  std::pair<size_t, std::vector<uint8_t>> smallest(std::span<const uint8_t> raw) const {
    std::pair<size_t, std::vector<uint8_t>> best{0, candidates_[0]->encode(raw)};
    for (size_t i = 1; i < candidates_.size(); ++i) {
      auto encoded = candidates_[i]->encode(raw);
      if (encoded.size() < best.second.size()) best = {i, std::move(encoded)};
    }
    return best;
  }

  int width_;
  std::vector<std::unique_ptr<ByteCodec>> candidates_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_auto_codec(const SpecStage& stage) { return std::make_unique<AutoCodec>(auto_width(stage)); }

}  // namespace pgolf

// "auto[:width=W][,for=python]": the smallest of rans, zstd:22 and zlib:9 on each stream (each as it
// codes W-byte symbols); for=python, of vrans, zlib:9 and xz:9, which the Python decoder reads. An artifact records the chosen codec for each stream group (encode_named), so
// decoding never needs this one; on its own, its output is the chosen codec's index in one byte,
// then that codec's output (auto_decoder.cpp).
#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {

class AutoCodec final : public ByteCodec {
 public:
  explicit AutoCodec(AutoSettings settings) : settings_(settings) {
    for (const auto& spec : auto_candidates(settings)) candidates_.push_back(make_byte_codec(spec));
  }
  std::string spec() const override { return settings_.spec(); }
  std::string spec_for_symbols(int width) const override { return AutoSettings{width, settings_.python}.spec(); }

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

  AutoSettings settings_;
  std::vector<std::unique_ptr<ByteCodec>> candidates_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_auto_codec(const SpecStage& stage) { return std::make_unique<AutoCodec>(auto_settings(stage)); }

}  // namespace pgolf

// "auto[:width=W]": the smallest of rans, zstd:22 and zlib:9 on each stream (each as it codes
// W-byte symbols). An artifact records the chosen codec for each stream group (encode_named), so
// decoding never needs this one; on its own, its output is the chosen codec's index in one byte,
// then that codec's output.
#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr const char* kCandidates[] = {"rans", "zstd:22", "zlib:9"};

class AutoCodec final : public ByteCodec {
 public:
  explicit AutoCodec(int width) : width_(width) {
    for (const char* spec : kCandidates) candidates_.push_back(make_byte_codec(make_byte_codec(spec)->spec_for_symbols(width)));
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
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(!encoded.empty() && encoded[0] < candidates_.size(), "corrupt auto stream: no valid codec index");
    return candidates_[encoded[0]]->decode(encoded.subspan(1), raw_size);
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

std::unique_ptr<ByteCodec> make_auto_codec(const SpecStage& stage) {
  auto text = stage.get("width");
  long width = text ? parse_integer(*text, "auto symbol width") : 1;
  require(stage.params.size() == (text ? 1u : 0u) && (width == 1 || width == 2 || width == 4 || width == 8),
          "auto takes an optional symbol width of 1, 2, 4 or 8 bytes, e.g. auto or auto:width=2 (got '" +
              stage.to_string() + "')");
  return std::make_unique<AutoCodec>(static_cast<int>(width));
}

}  // namespace pgolf

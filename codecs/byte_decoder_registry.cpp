// The table of byte decoders: adding a codec is one row here, one in byte_codec_registry.cpp, and
// its encoder and decoder files.
#include "codecs/byte_decoder_registry.h"

#include "core/error.h"

namespace pgolf {

namespace {
struct ByteDecoderEntry {
  std::string_view name;
  bool size_preserving;  // a transform that may stand before another codec in a chain
  std::unique_ptr<ByteDecoder> (*make)(const SpecStage&);
};
constexpr ByteDecoderEntry kByteDecoders[] = {
    {"zstd", false, make_zstd_decoder},
    {"zlib", false, make_zlib_decoder},
    {"xz", false, make_xz_decoder},
    {"none", true, make_none_decoder},
    {"shuffle", true, make_shuffle_decoder},
    {"rotate", true, make_rotate_decoder},
    {"rans", false, make_rans_decoder},
    {"vrans", false, make_vrans_decoder},
    {"auto", false, make_auto_decoder},
};

// "T1+T2+...+C": size-preserving transforms, then one codec, decoded backwards; every
// intermediate stream has the raw size, so each stage can check it.
class ChainDecoder final : public ByteDecoder {
 public:
  explicit ChainDecoder(std::vector<std::unique_ptr<ByteDecoder>> stages) : stages_(std::move(stages)) {}
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    std::vector<uint8_t> data = stages_.back()->decode(encoded, raw_size);
    for (size_t i = stages_.size() - 1; i-- > 0;) data = stages_[i]->decode(data, raw_size);
    return data;
  }

 private:
  std::vector<std::unique_ptr<ByteDecoder>> stages_;
};

const ByteDecoderEntry& find_entry(const SpecStage& stage, std::string_view spec) {
  for (const auto& e : kByteDecoders)
    if (e.name == stage.name) return e;
  std::string known;
  for (const auto& e : kByteDecoders) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw InputError("unknown compressor '" + std::string(spec) + "' (known: " + known + ")");
}

}  // namespace

std::vector<std::string> byte_codec_names() {
  std::vector<std::string> names;
  for (const auto& e : kByteDecoders) names.emplace_back(e.name);
  return names;
}

std::unique_ptr<ByteDecoder> make_byte_decoder(std::string_view spec) {
  auto stages = parse_spec(spec);
  std::vector<std::unique_ptr<ByteDecoder>> decoders;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& entry = find_entry(stages[i], spec);
    require(entry.size_preserving || i + 1 == stages.size(),
            "compressor '" + std::string(spec) + "': only size-preserving transforms (shuffle, rotate, none) may come before '+'");
    decoders.push_back(entry.make(stages[i]));
  }
  if (decoders.size() == 1) return std::move(decoders[0]);
  return std::make_unique<ChainDecoder>(std::move(decoders));
}

}  // namespace pgolf

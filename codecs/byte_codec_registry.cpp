// The table of byte encoders: adding a codec is one row here, one in byte_decoder_registry.cpp, and
// its encoder and decoder files.
#include "codecs/byte_codec_registry.h"

#include <stdexcept>

#include "codecs/byte_decoder_registry.h"

namespace pgolf {

namespace {
struct ByteCodecEntry {
  std::string_view name;
  std::unique_ptr<ByteCodec> (*make)(const SpecStage&);
};
constexpr ByteCodecEntry kByteCodecs[] = {
    {"zstd", make_zstd_codec},
    {"zlib", make_zlib_codec},
    {"xz", make_xz_codec},
    {"none", make_none_codec},
    {"shuffle", make_shuffle_codec},
    {"rotate", make_rotate_codec},
    {"rans", make_rans_codec},
    {"vrans", make_vrans_codec},
    {"auto", make_auto_codec},
};

// "T1+T2+...+C": size-preserving transforms, then one codec.
class ChainCodec final : public ByteCodec {
 public:
  explicit ChainCodec(std::vector<std::unique_ptr<ByteCodec>> stages) : stages_(std::move(stages)) {}
  std::string spec() const override {
    std::string s;
    for (const auto& stage : stages_) {
      if (!s.empty()) s += '+';
      s += stage->spec();
    }
    return s;
  }
  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override { return encode_named(raw).second; }
  std::pair<std::string, std::vector<uint8_t>> encode_named(std::span<const uint8_t> raw) const override {
    std::vector<uint8_t> data(raw.begin(), raw.end());
    std::string name;
    for (size_t i = 0; i + 1 < stages_.size(); ++i) {
      data = stages_[i]->encode(data);
      name += stages_[i]->spec() + "+";
    }
    auto [last, encoded] = stages_.back()->encode_named(data);
    return {name + last, std::move(encoded)};
  }

 private:
  std::vector<std::unique_ptr<ByteCodec>> stages_;
};

}  // namespace

std::vector<uint8_t> ByteCodec::decode(std::span<const uint8_t> encoded, size_t raw_size) const {
  return make_byte_decoder(spec())->decode(encoded, raw_size);
}

std::string ByteCodec::spec_for_symbols(int width) const {
  return width == 1 ? spec() : "shuffle:" + std::to_string(width) + "+" + spec();
}

std::pair<std::string, std::vector<uint8_t>> ByteCodec::encode_named(std::span<const uint8_t> raw) const {
  return {spec(), encode(raw)};
}

std::unique_ptr<ByteCodec> make_byte_codec(std::string_view spec) {
  make_byte_decoder(spec);  // the decoder table checks names, parameters and the chain: what encodes, decodes
  std::vector<std::unique_ptr<ByteCodec>> codecs;
  for (const auto& stage : parse_spec(spec)) {
    const ByteCodecEntry* entry = nullptr;
    for (const auto& e : kByteCodecs)
      if (e.name == stage.name) entry = &e;
    if (!entry) throw std::logic_error("byte codec '" + stage.name + "' has a decoder but no encoder");
    codecs.push_back(entry->make(stage));
  }
  if (codecs.size() == 1) return std::move(codecs[0]);
  return std::make_unique<ChainCodec>(std::move(codecs));
}

}  // namespace pgolf

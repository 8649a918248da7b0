// The table of byte codecs: adding one is one row here and one file beside this one.
#include "codecs/byte_codec_registry.h"

#include "core/error.h"

namespace pgolf {

namespace {
struct ByteCodecEntry {
  std::string_view name;
  bool size_preserving;  // a transform that may stand before another codec in a chain
  std::unique_ptr<ByteCodec> (*make)(const SpecStage&);
};
constexpr ByteCodecEntry kByteCodecs[] = {
    {"zstd", false, make_zstd_codec},
    {"zlib", false, make_zlib_codec},
    {"none", true, make_none_codec},
    {"shuffle", true, make_shuffle_codec},
    {"rotate", true, make_rotate_codec},
    {"rans", false, make_rans_codec},
    {"auto", false, make_auto_codec},
};

// "T1+T2+...+C": size-preserving transforms, then one codec. Decoding runs the chain
// backwards; every intermediate stream has the raw size, so each stage can check it.
class ChainCodec final : public ByteCodec {
 public:
  explicit ChainCodec(std::vector<std::unique_ptr<ByteCodec>> stages) : stages_(std::move(stages)) {}
  std::string spec() const override {
    std::string s;
    for (const auto& stage : stages_) s += (s.empty() ? "" : "+") + stage->spec();
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
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    std::vector<uint8_t> data = stages_.back()->decode(encoded, raw_size);
    for (size_t i = stages_.size() - 1; i-- > 0;) data = stages_[i]->decode(data, raw_size);
    return data;
  }

 private:
  std::vector<std::unique_ptr<ByteCodec>> stages_;
};

const ByteCodecEntry& find_entry(const SpecStage& stage, std::string_view spec) {
  for (const auto& e : kByteCodecs)
    if (e.name == stage.name) return e;
  std::string known;
  for (const auto& e : kByteCodecs) known += (known.empty() ? "" : ", ") + std::string(e.name);
  throw InputError("unknown compressor '" + std::string(spec) + "' (known: " + known + ")");
}

}  // namespace

std::string ByteCodec::spec_for_symbols(int width) const {
  return width == 1 ? spec() : "shuffle:" + std::to_string(width) + "+" + spec();
}

std::pair<std::string, std::vector<uint8_t>> ByteCodec::encode_named(std::span<const uint8_t> raw) const {
  return {spec(), encode(raw)};
}

std::vector<std::string> byte_codec_names() {
  std::vector<std::string> names;
  for (const auto& e : kByteCodecs) names.emplace_back(e.name);
  return names;
}

std::unique_ptr<ByteCodec> make_byte_codec(std::string_view spec) {
  auto stages = parse_spec(spec);
  std::vector<std::unique_ptr<ByteCodec>> codecs;
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& entry = find_entry(stages[i], spec);
    require(entry.size_preserving || i + 1 == stages.size(),
            "compressor '" + std::string(spec) + "': only size-preserving transforms (shuffle, rotate, none) may come before '+'");
    codecs.push_back(entry.make(stages[i]));
  }
  if (codecs.size() == 1) return std::move(codecs[0]);
  return std::make_unique<ChainCodec>(std::move(codecs));
}

}  // namespace pgolf

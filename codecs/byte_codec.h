// Lossless byte codecs (bytes to fewer bytes), registered by name with a spec string:
// "zstd:22", "zlib:9", "none", "rans", "auto". One small interface, one file per implementation
// for the encoder and one for its decoder (codecs/byte_decoder.h).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codecs/byte_decoder.h"

namespace pgolf {

class ByteCodec {
 public:
  virtual ~ByteCodec() = default;
  virtual std::string spec() const = 0;  // canonical spec; make_byte_codec(spec()) rebuilds it
  virtual std::vector<uint8_t> encode(std::span<const uint8_t> raw) const = 0;
  // make_byte_decoder(spec())'s decode: what was encoded comes back only through the decoder table.
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const;

  // The spec of this codec for streams of `width`-byte little-endian integer symbols: behind a byte
  // shuffle by default; rans codes 16-bit symbols as one alphabet.
  virtual std::string spec_for_symbols(int width) const;
  // encode(), and the spec of the codec that decodes the result: spec() but for a codec that
  // chooses ("auto"), which names its choice, so stored bytes never need the chooser to decode.
  virtual std::pair<std::string, std::vector<uint8_t>> encode_named(std::span<const uint8_t> raw) const;
};

// Throws InputError for an unknown name or a bad parameter, listing what is accepted.
std::unique_ptr<ByteCodec> make_byte_codec(std::string_view spec);

}  // namespace pgolf

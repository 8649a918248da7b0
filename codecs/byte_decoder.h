// The decoding half of the byte codecs (codecs/byte_codec.h): all that reading an artifact needs.
// Decoders are built as their own library (pgolf_codecs_decode) without any encoder, as zstd builds
// its decompressor alone; a codec's bytes are decoded by the decoder its spec names.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

class ByteDecoder {
 public:
  virtual ~ByteDecoder() = default;
  // raw_size is the exact decoded size recorded by the caller; a stream that does not decode
  // to exactly that many bytes is an InputError (corrupt input), never a crash.
  virtual std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const = 0;
};

// The decoder of what make_byte_codec(spec) encodes. Throws InputError for an unknown name, a bad
// parameter or a bad chain, listing what is accepted: every spec a codec takes, its decoder takes.
std::unique_ptr<ByteDecoder> make_byte_decoder(std::string_view spec);
std::vector<std::string> byte_codec_names();

}  // namespace pgolf

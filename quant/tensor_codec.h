// Lossy tensor codecs (values to symbols), faiss-style: one small interface, one file per
// codec, a table of names in tensor_codec_registry.cpp.
//
// A codec turns one float tensor into typed streams and back. Each stream names the group it
// joins in the artifact: streams of one group (all int6 symbols, all fp16 scales, ...) are
// concatenated and compressed together, because similar bytes compress best side by side.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

// A tensor's layout as codecs see it: shape[0] rows of numel/rows columns (1 row for scalars
// and 1-D tensors).
struct TensorShape {
  std::vector<int64_t> dims;
  int64_t numel() const;
  int64_t rows() const;
  int64_t cols() const;
};

struct Stream {
  std::string group;      // e.g. "int6", "scale.fp16", "fp16"
  std::vector<uint8_t> bytes;
  int element_bytes = 1;  // 2 or 4 for float streams, whose bytes the artifact groups before compressing
  bool integer = false;   // wide symbols: element_bytes-wide little-endian integers, not floats
  bool bf16 = false;      // 2-byte floats are bf16, not fp16: after the sign, the exponent fills a byte
};

class TensorCodec {
 public:
  virtual ~TensorCodec() = default;
  virtual std::string spec() const = 0;    // canonical; make_tensor_codec(spec()) rebuilds it
  virtual bool is_passthrough() const = 0;  // stores values as floats (fp16/bf16/fp32), no quantization
  // Throws InputError for input the codec refuses (NaN/Inf where it quantizes, out of range).
  virtual std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const = 0;
  // streams: the bytes of each stream encode() produced, in order. A stream of the wrong size
  // or content is an InputError (a corrupt artifact), never a crash.
  virtual std::vector<float> decode(std::span<const std::span<const uint8_t>> streams,
                                    const TensorShape& shape) const = 0;
};

// Throws InputError for an unknown name or bad parameters, listing what is accepted.
std::unique_ptr<TensorCodec> make_tensor_codec(std::string_view spec);
std::vector<std::string> tensor_codec_names();  // for --help and error messages

// Decodes what encode() produced, as the artifact would.
std::vector<float> decode_streams(const TensorCodec& codec, const std::vector<Stream>& streams, const TensorShape& shape);

// Throws InputError naming the first non-finite value.
void require_finite(std::span<const float> values, std::string_view codec);

}  // namespace pgolf

// The decoding half of the tensor codecs (quant/tensor_codec.h): all that reading an artifact
// needs. Decoders are built as their own library (pgolf_quant_decode) without any encoder, fit step
// or linear algebra; an artifact records for each tensor the decoder spec that reads its streams.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
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

class TensorDecoder {
 public:
  virtual ~TensorDecoder() = default;
  // How many streams it reads; fixed by its spec, so composites can split their stream lists.
  virtual size_t stream_count() const = 0;
  // True when its encoders put every input 0 where it decodes as exactly 0 (int-N, ECSQ, floats);
  // prune stores a mask of its zeros only for an inner codec where this is false.
  virtual bool keeps_zeros() const = 0;
  // streams: stream_count() streams as the encoder wrote them. A stream of the wrong size or
  // content is an InputError (a corrupt artifact), never a crash.
  virtual std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const = 0;
};

// The decoder of a decoder spec (TensorCodec::decoder_spec()). Throws InputError for an unknown
// name or bad parameters, listing what is accepted.
std::unique_ptr<TensorDecoder> make_tensor_decoder(std::string_view spec);

// Not a tensor codec: the spec under which the artifact stores a tensor's bytes exactly as they
// are, in its own dtype (non-float tensors, and every tensor of a lossless plan).
inline constexpr const char* kRawSpec = "raw";

}  // namespace pgolf

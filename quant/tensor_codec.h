// Lossy tensor codecs (values to symbols), faiss-style: one small interface, one file per
// codec's encoder and one per its decoder (quant/tensor_decoder.h), a table of names in
// tensor_codec_registry.cpp.
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

#include "quant/tensor_decoder.h"

namespace pgolf {

struct Stream {
  std::string group;      // e.g. "int6", "scale.fp16", "fp16"
  std::vector<uint8_t> bytes;
  int element_bytes = 1;  // 2 or 4 for float streams, whose bytes the artifact groups before compressing
  bool integer = false;   // wide symbols: element_bytes-wide little-endian integers, not floats
  bool bf16 = false;      // 2-byte floats are bf16, not fp16: after the sign, the exponent fills a byte
};

// The calibration of one matrix W [rows, cols], used as y = W x: H = E[x xᵀ] over its inputs on
// calibration tokens, [cols, cols] row-major (pgolf calibrate writes them).
struct InputHessian {
  std::span<const float> values;
  int64_t dim = 0;
};

// What a codec's fit step sees of one tensor it will encode.
struct FitTensor {
  std::string name;
  std::span<const float> values;
  TensorShape shape;
  const InputHessian* hessian = nullptr;  // null without calibration
};

class GptqEngine;
struct FitOptions {
  const GptqEngine* gptq = nullptr;  // where GPTQ's linear algebra runs; null: the CPU (Eigen)
};

class TensorCodec;
using FittedCodecs = std::vector<std::shared_ptr<const TensorCodec>>;

class TensorCodec {
 public:
  virtual ~TensorCodec() = default;
  virtual std::string spec() const = 0;    // canonical; make_tensor_codec(spec()) rebuilds it
  // What the artifact records: the spec that decodes this codec's streams. A codec that only
  // chooses symbols (gptq) leaves the decoder its inner codec's, so every reader reads it.
  virtual std::string decoder_spec() const { return spec(); }
  virtual bool is_passthrough() const = 0;  // stores values as floats (fp16/bf16/fp32), no quantization
  // The fit step (faiss's train): sees every tensor this codec will encode, with its calibration,
  // and returns one codec per tensor, ready to encode (ECSQ's shared step, GPTQ's Hessian). The
  // default needs no fitting: this codec, for every tensor. InputError names the tensor at fault.
  virtual FittedCodecs fit(std::span<const FitTensor> tensors, const FitOptions& options) const;
  // A parameter this codec will lower to fit a tensor of this shape (a rank past min(rows, cols)),
  // said as "rank 100000 -> 512"; empty when it takes the spec as written. For a warning.
  virtual std::string clamped(const TensorShape&) const { return ""; }
  // Throws InputError for input the codec refuses (NaN/Inf where it quantizes, out of range).
  virtual std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const = 0;
  // make_tensor_decoder(decoder_spec())'s decode: what was encoded comes back only through the
  // decoder table.
  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const;
};

// Throws InputError for an unknown name or bad parameters, listing what is accepted.
std::unique_ptr<TensorCodec> make_tensor_codec(std::string_view spec);
// The codec table, row by row: its usage and its canonical example specs (each one's spec() is
// itself). Tests, fuzz targets and --help iterate the examples, so a new codec is tested and
// documented by adding its row.
struct TensorCodecRow {
  std::string usage;
  std::vector<std::string> examples;
};
std::vector<TensorCodecRow> tensor_codec_table();

// make_tensor_codec(spec) fitted on the tensors: the one entry point of the fit step.
FittedCodecs fit_tensor_codec(std::string_view spec, std::span<const FitTensor> tensors, const FitOptions& options = {});

// Decodes what encode() produced, as the artifact would.
std::vector<float> decode_streams(const TensorCodec& codec, const std::vector<Stream>& streams, const TensorShape& shape);

// Throws InputError naming the first non-finite value.
void require_finite(std::span<const float> values, std::string_view codec);

}  // namespace pgolf

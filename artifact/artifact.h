// Writing the .pgz artifact (its format and reader: artifact/reader.h): encode a checkpoint by a
// list of specs, then pack the stream groups.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "artifact/reader.h"
#include "core/progress.h"
#include "quant/distortion.h"
#include "quant/tensor_codec.h"

namespace pgolf {

class Checkpoint;
class Calibration;
class ByteCodec;

// What compress measured for one tensor.
struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  std::string codec;
  bool quantized = false;      // a lossy codec other than float pass-through / raw
  uint64_t input_bytes = 0;    // in the checkpoint
  uint64_t stream_bytes = 0;   // before the byte codec
  double stored_bytes = 0;     // its share of its groups' stored bytes (groups compress jointly)
  Distortion distortion;
};

struct CompressResult {
  std::vector<uint8_t> bytes;  // the whole artifact
  ArtifactManifest manifest;
  std::vector<TensorReport> tensors;
};

struct CompressOptions {
  unsigned threads = 0;            // 0: all cores
  ProgressReport progress;         // stage "encoding", one unit per tensor
  const Calibration* calibration = nullptr;  // input Hessians: for fit steps (gptq) and output error
  const GptqEngine* gptq = nullptr;          // where GPTQ runs; null: the CPU
};

// Encodes every tensor of the checkpoint by its spec (specs[i] for tensor i, in the checkpoint's
// order: Plan::specs_for gives them, or the budget solver): each spec's fit step first, with every
// tensor it encodes and their calibration; then compresses each stream group with the byte codec,
// and measures each tensor's distortion (in output space too, where calibrated) against exactly
// what decoding will give. Same inputs, same bytes. It is pack_artifact(encode_checkpoint(...)).
CompressResult compress_checkpoint(const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                                   const ByteCodec& compressor, const CompressOptions& options = {});

// The two halves of compress_checkpoint, for callers that try several byte codecs on the same
// streams (the rate-distortion bench) or look at streams before packing (the budget solver).
struct EncodedTensor {
  std::vector<Stream> streams;
  TensorReport report;  // codec: the fitted spec (ecsq:totalrelmse's step resolved); stored_bytes is 0 until packed
  std::string decoder;  // the spec the artifact records (what decodes the streams)
};
struct EncodedCheckpoint {
  std::map<std::string, std::string> metadata;
  std::vector<EncodedTensor> tensors;  // the checkpoint's order (sorted by name)
};
EncodedCheckpoint encode_checkpoint(const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                                    const CompressOptions& options = {});
// Groups the streams, compresses each group with the byte codec (as group_codec_spec says) and
// lays out the file; a choosing compressor ("auto") records its choice per group. options.progress
// is not used.
CompressResult pack_artifact(const EncodedCheckpoint& encoded, const ByteCodec& compressor,
                             const CompressOptions& options = {});

// The byte codec spec for the group a stream joins: the compressor for byte symbols, as it codes
// wide symbols for integer streams (rans: one 16-bit alphabet), and for floats behind a byte
// grouping (rotate:W+shuffle:W: exponents in one plane, signs and mantissas in the others; fp16
// only shuffle:2).
std::string group_codec_spec(const Stream& stream, const ByteCodec& compressor);

}  // namespace pgolf

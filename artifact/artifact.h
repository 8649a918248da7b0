// The .pgz artifact: one self-describing, versioned file.
//
//   bytes 0..7    magic 0x89 'P' 'G' 'Z' '\r' '\n' 0x1a '\n'
//   bytes 8..23   four little-endian u32: format version, manifest size raw, manifest size
//                 stored (zstd), crc32 of the stored manifest
//   then          the manifest (JSON, zstd-compressed): per tensor its name, shape, original
//                 dtype, codec spec and streams (group, offset, size); per group its byte
//                 codec, raw and stored sizes and crc32 of both
//   then          the stored groups, back to back in manifest order
//
// Decoding needs nothing but the file; every size is checked against the file before
// anything is allocated, and every checksum is verified.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/progress.h"
#include "quant/distortion.h"
#include "quant/tensor_codec.h"

namespace pgolf {

class Checkpoint;
class Calibration;
class ByteCodec;

inline constexpr uint32_t kArtifactVersion = 1;

struct StreamRef {
  size_t group;  // index into ArtifactManifest::groups
  uint64_t offset;
  uint64_t size;
};

struct ManifestTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;  // the checkpoint's original dtype
  std::string codec;
  std::vector<StreamRef> streams;
};

struct ManifestGroup {
  std::string name;
  std::string codec;  // byte codec spec
  uint64_t raw_size = 0;
  uint64_t stored_size = 0;
  uint32_t raw_crc32 = 0;
  uint32_t stored_crc32 = 0;
};

struct ArtifactManifest {
  std::map<std::string, std::string> metadata;  // the checkpoint's __metadata__
  std::vector<ManifestTensor> tensors;          // sorted by name
  std::vector<ManifestGroup> groups;
};

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

// A decoded tensor: float values, or (codec "raw") the original bytes of its dtype.
struct DecodedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype;
  std::string codec;
  std::vector<float> values;  // empty for raw
  std::vector<uint8_t> raw;   // only for raw
};

struct DecodedArtifact {
  ArtifactManifest manifest;
  std::vector<DecodedTensor> tensors;
};

// Parses and checks the header and manifest only (no stream is decompressed).
ArtifactManifest read_manifest(std::span<const uint8_t> file, const std::string& path);
// Decodes everything; InputError naming the path on any corruption.
DecodedArtifact decode_artifact(std::span<const uint8_t> file, const std::string& path);
DecodedArtifact decode_artifact_file(const std::string& path);

bool has_artifact_magic(std::span<const uint8_t> bytes);

}  // namespace pgolf

// The .pgz artifact: one self-describing, versioned file.
//
//   bytes 0..7    magic 0x89 'P' 'G' 'Z' '\r' '\n' 0x1a '\n'
//   bytes 8..23   four little-endian u32: format version, manifest size raw, manifest size
//                 stored, crc32 of the stored manifest
//   then          the manifest (JSON; xz-compressed since version 2, so that Python's standard
//                 library reads it; zstd in version 1): per tensor its name, shape, original
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
#include "quant/tensor_decoder.h"  // kRawSpec

namespace pgolf {

inline constexpr uint8_t kArtifactMagic[8] = {0x89, 'P', 'G', 'Z', '\r', '\n', 0x1a, '\n'};
inline constexpr size_t kArtifactHeaderBytes = 24;
inline constexpr uint64_t kMaxManifestBytes = 256u << 20;
inline constexpr uint32_t kArtifactVersion = 2;  // what pgolf writes; it reads versions 1 and 2
// The byte codec of the manifest in a format version; InputError for one this pgolf does not read.
std::string manifest_codec(uint32_t version);

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
  uint32_t version = kArtifactVersion;
  std::map<std::string, std::string> metadata;  // the checkpoint's __metadata__
  std::vector<ManifestTensor> tensors;          // sorted by name
  std::vector<ManifestGroup> groups;
};

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

#include "artifact/artifact.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "quant/calibration.h"
#include "quant/gptq.h"
#include "quant/tensor_codec.h"

namespace pgolf {

namespace {

using nlohmann::json;

constexpr uint8_t kMagic[8] = {0x89, 'P', 'G', 'Z', '\r', '\n', 0x1a, '\n'};
constexpr size_t kHeaderBytes = 24;
constexpr const char* kManifestCodec = "zstd:19";
constexpr uint64_t kMaxManifestBytes = 256u << 20;
// At most this many tensor elements, plus this many per byte of the artifact (base9: 1.5 per byte).
constexpr uint64_t kMaxElementsBase = uint64_t{1} << 24;
constexpr uint64_t kMaxElementsPerByte = 4096;

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

json manifest_to_json(const ArtifactManifest& m) {
  json tensors = json::array();
  for (const auto& t : m.tensors) {
    json streams = json::array();
    for (const auto& s : t.streams) streams.push_back({s.group, s.offset, s.size});
    tensors.push_back({{"name", t.name},
                       {"shape", t.shape},
                       {"dtype", std::string(dtype_name(t.dtype))},
                       {"codec", t.codec},
                       {"streams", streams}});
  }
  json groups = json::array();
  for (const auto& g : m.groups)
    groups.push_back({{"name", g.name},
                      {"codec", g.codec},
                      {"raw_size", g.raw_size},
                      {"stored_size", g.stored_size},
                      {"raw_crc32", g.raw_crc32},
                      {"stored_crc32", g.stored_crc32}});
  return {{"format", "pgolf-artifact"},
          {"version", kArtifactVersion},
          {"metadata", m.metadata},
          {"tensors", tensors},
          {"groups", groups}};
}

// nlohmann's get<unsigned>() converts any number: a float out of range is undefined behaviour (found
// by fuzz/artifact), a negative integer wraps. Sizes, offsets, checksums and dimensions are integers.
uint64_t integer_in_range(const json& v, uint64_t max, const std::string& what) {
  require(v.is_number_integer() && (v.is_number_unsigned() || v.get<int64_t>() >= 0) && v.get<uint64_t>() <= max,
          what + " must be an integer from 0 to " + std::to_string(max) + ", not " + v.dump());
  return v.get<uint64_t>();
}

ArtifactManifest manifest_from_json(const json& j, const std::string& path) {
  ArtifactManifest m;
  constexpr uint64_t kAny = ~uint64_t{0};
  try {
    require(j.at("format") == "pgolf-artifact", path + ": manifest is not a pgolf artifact's");
    m.metadata = j.at("metadata").get<std::map<std::string, std::string>>();
    for (const auto& g : j.at("groups")) {
      std::string where = path + ": group " + g.at("name").dump() + ": ";
      ManifestGroup group{g.at("name").get<std::string>(),
                          g.at("codec").get<std::string>(),
                          integer_in_range(g.at("raw_size"), kAny, where + "raw_size"),
                          integer_in_range(g.at("stored_size"), kAny, where + "stored_size"),
                          static_cast<uint32_t>(integer_in_range(g.at("raw_crc32"), UINT32_MAX, where + "raw_crc32")),
                          static_cast<uint32_t>(integer_in_range(g.at("stored_crc32"), UINT32_MAX, where + "stored_crc32"))};
      m.groups.push_back(std::move(group));
    }
    for (const auto& t : j.at("tensors")) {
      ManifestTensor tensor;
      tensor.name = t.at("name").get<std::string>();
      std::string where = path + ": tensor '" + tensor.name + "': ";
      require(t.at("shape").is_array(), where + "shape must be an array");
      for (const auto& d : t.at("shape"))
        tensor.shape.push_back(static_cast<int64_t>(integer_in_range(d, INT64_MAX, where + "a dimension")));
      auto dtype = dtype_from_name(t.at("dtype").get<std::string>());
      require(dtype.has_value(), path + ": tensor '" + tensor.name + "' has an unknown dtype");
      tensor.dtype = *dtype;
      tensor.codec = t.at("codec").get<std::string>();
      for (const auto& s : t.at("streams")) {
        require(s.is_array() && s.size() == 3, path + ": tensor '" + tensor.name + "' has a malformed stream");
        tensor.streams.push_back({integer_in_range(s[0], kAny, where + "a stream's group"),
                                  integer_in_range(s[1], kAny, where + "a stream's offset"),
                                  integer_in_range(s[2], kAny, where + "a stream's size")});
      }
      m.tensors.push_back(std::move(tensor));
    }
  } catch (const json::exception& e) {
    throw InputError(path + ": malformed manifest: " + e.what());
  }
  // Structural checks: every reference inside its group and no two overlapping, names unique and
  // not safetensors' reserved one, shapes sane, a codec's dtype one it decodes to: what the writer
  // never makes, the reader refuses.
  struct Span {
    size_t group;
    uint64_t offset, size;
    const std::string* tensor;
  };
  std::vector<Span> spans;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& t = m.tensors[i];
    require(i == 0 || m.tensors[i - 1].name < t.name, path + ": tensor names not sorted or not unique at '" + t.name + "'");
    require(t.name != "__metadata__", path + ": a tensor named __metadata__ (safetensors' reserved key)");
    require(t.codec == kRawSpec || dtype_is_float(t.dtype), path + ": tensor '" + t.name + "' claims dtype " +
                                                                std::string(dtype_name(t.dtype)) + " but its codec " +
                                                                t.codec + " decodes floats");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      require(d >= 0 && (d == 0 || numel <= (uint64_t{1} << 40) / static_cast<uint64_t>(d)),
              path + ": tensor '" + t.name + "' has a bad shape");
      numel *= static_cast<uint64_t>(d);
    }
    for (const auto& s : t.streams) {
      require(s.group < m.groups.size(), path + ": tensor '" + t.name + "' names a missing stream group");
      const auto& g = m.groups[s.group];
      require(s.offset <= g.raw_size && s.size <= g.raw_size - s.offset,
              path + ": tensor '" + t.name + "' has a stream outside group '" + g.name + "'");
      if (s.size > 0) spans.push_back({s.group, s.offset, s.size, &t.name});
    }
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return std::tie(a.group, a.offset) < std::tie(b.group, b.offset); });
  for (size_t i = 1; i < spans.size(); ++i)
    require(spans[i].group != spans[i - 1].group || spans[i].offset >= spans[i - 1].offset + spans[i - 1].size,
            path + ": tensors '" + *spans[i - 1].tensor + "' and '" + *spans[i].tensor + "' share stream bytes in group '" +
                m.groups[spans[i].group].name + "'");
  return m;
}

bool is_quantizing(const std::string& spec, const TensorCodec* codec) {
  return spec != kRawSpec && !codec->is_passthrough();
}

EncodedTensor encode_tensor(const TensorRef& ref, const std::string& spec, std::span<const float> values,
                            const TensorCodec* codec, const InputHessian* hessian) {
  EncodedTensor out;
  out.report.name = ref.name;
  out.report.shape = ref.shape;
  out.report.dtype = ref.dtype;
  out.report.codec = spec;
  out.decoder = spec;
  out.report.input_bytes = ref.bytes.size();
  if (spec == kRawSpec) {
    out.streams.push_back({"raw." + std::string(dtype_name(ref.dtype)), {ref.bytes.begin(), ref.bytes.end()},
                           static_cast<int>(dtype_size(ref.dtype)), false, ref.dtype == DType::BF16});
  } else {
    TensorShape shape{ref.shape};
    out.report.codec = codec->spec();
    out.decoder = codec->decoder_spec();
    try {
      out.streams = codec->encode(values, shape);
      std::vector<float> decoded = decode_streams(*codec, out.streams, shape);
      out.report.distortion = Distortion::measure(values, decoded);
      if (hessian) {
        OutputError e = output_error(values, decoded, shape, *hessian);
        out.report.distortion.output_sq_error = e.error;
        out.report.distortion.output_sq_reference = e.reference;
        out.report.distortion.output_tensors = 1;
      }
    } catch (const InputError& e) {
      throw InputError("tensor '" + ref.name + "': " + e.what());
    }
    out.report.quantized = is_quantizing(spec, codec);
  }
  for (const auto& s : out.streams) out.report.stream_bytes += s.bytes.size();
  return out;
}

}  // namespace

std::string group_codec_spec(const Stream& stream, const ByteCodec& compressor) {
  if (stream.integer) return compressor.spec_for_symbols(stream.element_bytes);
  if (stream.element_bytes == 1) return compressor.spec();
  std::string width = std::to_string(stream.element_bytes);
  std::string shuffled = "shuffle:" + width + "+" + compressor.spec();
  // fp16's exponent does not fill a byte, rotated or not: it only shuffles.
  return stream.element_bytes == 2 && !stream.bf16 ? shuffled : "rotate:" + width + "+" + shuffled;
}

bool has_artifact_magic(std::span<const uint8_t> bytes) {
  return bytes.size() >= sizeof kMagic && std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0;
}

EncodedCheckpoint encode_checkpoint(const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                                    const CompressOptions& options) {
  const auto& refs = checkpoint.tensors();
  require(specs.size() == refs.size(), "the plan has " + std::to_string(specs.size()) + " specs for " +
                                           std::to_string(refs.size()) + " tensors");
  EncodedCheckpoint encoded{checkpoint.metadata(), std::vector<EncodedTensor>(refs.size())};
  unsigned threads = options.threads ? options.threads : default_threads();
  std::vector<std::vector<float>> values(refs.size());
  std::vector<const InputHessian*> hessians(refs.size(), nullptr);
  std::map<std::string, std::vector<size_t>> by_spec;  // the tensors each spec encodes
  for (size_t i = 0; i < refs.size(); ++i) {
    if (specs[i] == kRawSpec) continue;
    by_spec[specs[i]].push_back(i);
    if (options.calibration) hessians[i] = options.calibration->find(refs[i].name);
  }
  parallel_for(refs.size(), [&](size_t i) {
    if (specs[i] != kRawSpec) values[i] = refs[i].to_floats();
  }, threads);
  // The fit step: each spec sees every tensor it encodes at once.
  std::vector<std::shared_ptr<const TensorCodec>> codecs(refs.size());
  for (const auto& [spec, members] : by_spec) {
    std::vector<FitTensor> fit;
    for (size_t i : members) fit.push_back({refs[i].name, values[i], TensorShape{refs[i].shape}, hessians[i]});
    FittedCodecs fitted = fit_tensor_codec(spec, fit, {options.gptq});
    for (size_t k = 0; k < members.size(); ++k) codecs[members[k]] = fitted[k];
  }
  ProgressCounter encoded_count(options.progress, "encoding", refs.size());
  parallel_for(refs.size(), [&](size_t i) {
    encoded.tensors[i] = encode_tensor(refs[i], specs[i], values[i], codecs[i].get(), hessians[i]);
    std::vector<float>().swap(values[i]);
    encoded_count.advance();
  }, threads);
  return encoded;
}

CompressResult compress_checkpoint(const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                                   const ByteCodec& compressor, const CompressOptions& options) {
  return pack_artifact(encode_checkpoint(checkpoint, specs, options), compressor, options);
}

CompressResult pack_artifact(const EncodedCheckpoint& encoded, const ByteCodec& compressor, const CompressOptions& options) {
  unsigned threads = options.threads ? options.threads : default_threads();
  // Group streams by name, in order of first appearance (tensors are sorted by name).
  CompressResult result;
  ArtifactManifest& manifest = result.manifest;
  manifest.metadata = encoded.metadata;
  std::vector<std::vector<uint8_t>> group_raw;
  std::vector<std::unique_ptr<ByteCodec>> group_codecs;
  for (const auto& tensor : encoded.tensors) {
    const TensorReport& report = tensor.report;
    ManifestTensor t{report.name, report.shape, report.dtype, tensor.decoder, {}};
    for (const auto& stream : tensor.streams) {
      auto it = std::find_if(manifest.groups.begin(), manifest.groups.end(),
                             [&](const ManifestGroup& g) { return g.name == stream.group; });
      size_t g = static_cast<size_t>(it - manifest.groups.begin());
      if (it == manifest.groups.end()) {
        std::string codec = group_codec_spec(stream, compressor);
        manifest.groups.push_back({stream.group, codec, 0, 0, 0, 0});
        group_raw.emplace_back();
        group_codecs.push_back(make_byte_codec(codec));
      }
      t.streams.push_back({g, group_raw[g].size(), stream.bytes.size()});
      group_raw[g].insert(group_raw[g].end(), stream.bytes.begin(), stream.bytes.end());
    }
    manifest.tensors.push_back(std::move(t));
  }

  std::vector<std::vector<uint8_t>> group_stored(group_raw.size());
  // A choosing compressor ("auto") records its choice, so decoding needs nothing but that codec.
  parallel_for(group_raw.size(), [&](size_t g) {
    std::tie(manifest.groups[g].codec, group_stored[g]) = group_codecs[g]->encode_named(group_raw[g]);
  }, threads);
  for (size_t g = 0; g < group_raw.size(); ++g) {
    auto& group = manifest.groups[g];
    group.raw_size = group_raw[g].size();
    group.stored_size = group_stored[g].size();
    group.raw_crc32 = crc32_of(group_raw[g]);
    group.stored_crc32 = crc32_of(group_stored[g]);
  }

  // Each tensor's share of stored bytes: its raw share of each group it uses.
  for (size_t i = 0; i < encoded.tensors.size(); ++i) {
    TensorReport report = encoded.tensors[i].report;
    for (const auto& s : manifest.tensors[i].streams) {
      const auto& g = manifest.groups[s.group];
      if (g.raw_size > 0) report.stored_bytes += static_cast<double>(s.size) * g.stored_size / g.raw_size;
    }
    result.tensors.push_back(std::move(report));
  }

  std::string manifest_text = manifest_to_json(manifest).dump();
  std::span<const uint8_t> manifest_raw(reinterpret_cast<const uint8_t*>(manifest_text.data()), manifest_text.size());
  auto manifest_stored = make_byte_codec(kManifestCodec)->encode(manifest_raw);
  require(manifest_raw.size() <= kMaxManifestBytes, "the manifest is too large");

  auto& out = result.bytes;
  out.assign(kMagic, kMagic + sizeof kMagic);
  put_u32(out, kArtifactVersion);
  put_u32(out, static_cast<uint32_t>(manifest_raw.size()));
  put_u32(out, static_cast<uint32_t>(manifest_stored.size()));
  put_u32(out, crc32_of(manifest_stored));
  out.insert(out.end(), manifest_stored.begin(), manifest_stored.end());
  for (const auto& stored : group_stored) out.insert(out.end(), stored.begin(), stored.end());
  return result;
}

namespace {
// Where the stored groups start, after header and manifest (validated).
size_t manifest_end(std::span<const uint8_t> file, const std::string& path) {
  require(file.size() >= kHeaderBytes, path + ": too short to be an artifact (" + std::to_string(file.size()) + " bytes)");
  require(has_artifact_magic(file), path + ": not a pgolf artifact (bad magic)");
  uint32_t version = get_u32(file.data() + 8);
  require(version == kArtifactVersion, path + ": artifact format version " + std::to_string(version) +
                                           " is not supported (this pgolf reads version " +
                                           std::to_string(kArtifactVersion) + ")");
  uint32_t stored = get_u32(file.data() + 16);
  require(stored <= file.size() - kHeaderBytes, path + ": truncated (manifest runs past the end of the file)");
  return kHeaderBytes + stored;
}
}  // namespace

ArtifactManifest read_manifest(std::span<const uint8_t> file, const std::string& path) {
  size_t end = manifest_end(file, path);
  uint32_t raw_size = get_u32(file.data() + 12);
  uint32_t crc = get_u32(file.data() + 20);
  auto stored = file.subspan(kHeaderBytes, end - kHeaderBytes);
  require(crc32_of(stored) == crc, path + ": manifest checksum mismatch (corrupt artifact)");
  require(raw_size <= kMaxManifestBytes, path + ": manifest too large");
  std::vector<uint8_t> raw;
  try {
    raw = make_byte_codec(kManifestCodec)->decode(stored, raw_size);
  } catch (const InputError& e) {
    throw InputError(path + ": manifest: " + e.what());
  }
  json j = json::parse(raw.begin(), raw.end(), nullptr, false);
  require(!j.is_discarded() && j.is_object(), path + ": manifest is not valid JSON");
  ArtifactManifest m = manifest_from_json(j, path);
  // Decoding allocates every tensor whole, and a codec may expand a lot (low-rank factors, zstd on
  // zeros), so a few hundred bytes could ask for terabytes: the elements are capped by the file size.
  uint64_t elements = 0;
  for (const auto& t : m.tensors) elements += static_cast<uint64_t>(element_count(t.shape));
  uint64_t max_elements = kMaxElementsBase + kMaxElementsPerByte * file.size();
  require(elements <= max_elements, path + ": declares " + std::to_string(elements) + " elements, more than a " +
                                        std::to_string(file.size()) + "-byte artifact may hold (" +
                                        std::to_string(max_elements) + ")");
  uint64_t total = 0;
  for (const auto& g : m.groups) {
    require(g.stored_size <= file.size(), path + ": truncated (group '" + g.name + "' runs past the end)");
    total += g.stored_size;
  }
  require(total == file.size() - end, path + ": " +
                                          (total > file.size() - end ? std::string("truncated: ") : std::string("trailing bytes: ")) +
                                          "the manifest lists " + std::to_string(total) + " bytes of streams, the file holds " +
                                          std::to_string(file.size() - end));
  return m;
}

DecodedArtifact decode_artifact(std::span<const uint8_t> file, const std::string& path) {
  DecodedArtifact out;
  out.manifest = read_manifest(file, path);
  const auto& m = out.manifest;

  std::vector<std::vector<uint8_t>> raw(m.groups.size());
  std::vector<size_t> starts(m.groups.size());
  size_t offset = manifest_end(file, path);
  for (size_t g = 0; g < m.groups.size(); ++g) starts[g] = offset, offset += m.groups[g].stored_size;
  parallel_for(m.groups.size(), [&](size_t g) {
    const auto& group = m.groups[g];
    auto stored = file.subspan(starts[g], group.stored_size);
    require(crc32_of(stored) == group.stored_crc32, path + ": group '" + group.name + "' checksum mismatch (corrupt artifact)");
    try {
      raw[g] = make_byte_codec(group.codec)->decode(stored, group.raw_size);
    } catch (const InputError& e) {
      throw InputError(path + ": group '" + group.name + "': " + e.what());
    }
    require(crc32_of(raw[g]) == group.raw_crc32, path + ": group '" + group.name + "' decodes to the wrong bytes (corrupt artifact)");
  });

  out.tensors.resize(m.tensors.size());
  parallel_for(m.tensors.size(), [&](size_t i) {
    const auto& t = m.tensors[i];
    DecodedTensor& d = out.tensors[i];
    d.name = t.name;
    d.shape = t.shape;
    d.dtype = t.dtype;
    d.codec = t.codec;
    std::vector<std::span<const uint8_t>> views;
    for (const auto& s : t.streams) views.push_back(std::span<const uint8_t>(raw[s.group]).subspan(s.offset, s.size));
    try {
      if (t.codec == kRawSpec) {
        require(views.size() == 1 && views[0].size() == static_cast<size_t>(element_count(t.shape)) * dtype_size(t.dtype),
                "raw stream size does not match its shape");
        d.raw.assign(views[0].begin(), views[0].end());
      } else {
        d.values = make_tensor_codec(t.codec)->decode(views, TensorShape{t.shape});
      }
    } catch (const InputError& e) {
      throw InputError(path + ": tensor '" + t.name + "': " + e.what());
    }
  });
  return out;
}

DecodedArtifact decode_artifact_file(const std::string& path) {
  auto map = MappedFile::open(path);
  return decode_artifact(map->bytes(), path);
}

}  // namespace pgolf

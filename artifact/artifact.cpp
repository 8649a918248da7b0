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

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
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
  auto manifest_stored = make_byte_codec(manifest_codec(kArtifactVersion))->encode(manifest_raw);
  require(manifest_raw.size() <= kMaxManifestBytes, "the manifest is too large");

  auto& out = result.bytes;
  out.assign(kArtifactMagic, kArtifactMagic + sizeof kArtifactMagic);
  put_u32(out, kArtifactVersion);
  put_u32(out, static_cast<uint32_t>(manifest_raw.size()));
  put_u32(out, static_cast<uint32_t>(manifest_stored.size()));
  put_u32(out, crc32_of(manifest_stored));
  out.insert(out.end(), manifest_stored.begin(), manifest_stored.end());
  for (const auto& stored : group_stored) out.insert(out.end(), stored.begin(), stored.end());
  return result;
}

}  // namespace pgolf

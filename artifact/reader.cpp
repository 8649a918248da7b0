#include "artifact/reader.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <nlohmann/json.hpp>

#include "codecs/byte_decoder.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "quant/tensor_decoder.h"

namespace pgolf {

namespace {

using nlohmann::json;

// At most this many tensor elements, plus this many per byte of the artifact (base9: 1.5 per byte).
constexpr uint64_t kMaxElementsBase = uint64_t{1} << 24;
constexpr uint64_t kMaxElementsPerByte = 4096;

uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
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

}  // namespace

std::string manifest_codec(uint32_t version) {
  require(version == 1 || version == 2, "artifact format version " + std::to_string(version) +
                                            " is not supported (this pgolf reads versions 1 and 2)");
  return version == 1 ? "zstd:19" : "xz:9";
}

bool has_artifact_magic(std::span<const uint8_t> bytes) {
  return bytes.size() >= sizeof kArtifactMagic && std::memcmp(bytes.data(), kArtifactMagic, sizeof kArtifactMagic) == 0;
}

namespace {
// Where the stored groups start, after header and manifest (validated).
size_t manifest_end(std::span<const uint8_t> file, const std::string& path) {
  require(file.size() >= kArtifactHeaderBytes, path + ": too short to be an artifact (" + std::to_string(file.size()) + " bytes)");
  require(has_artifact_magic(file), path + ": not a pgolf artifact (bad magic)");
  try {
    manifest_codec(get_u32(file.data() + 8));
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  uint32_t stored = get_u32(file.data() + 16);
  require(stored <= file.size() - kArtifactHeaderBytes, path + ": truncated (manifest runs past the end of the file)");
  return kArtifactHeaderBytes + stored;
}
}  // namespace

ArtifactManifest read_manifest(std::span<const uint8_t> file, const std::string& path) {
  size_t end = manifest_end(file, path);
  uint32_t raw_size = get_u32(file.data() + 12);
  uint32_t crc = get_u32(file.data() + 20);
  auto stored = file.subspan(kArtifactHeaderBytes, end - kArtifactHeaderBytes);
  require(crc32_of(stored) == crc, path + ": manifest checksum mismatch (corrupt artifact)");
  require(raw_size <= kMaxManifestBytes, path + ": manifest too large");
  std::vector<uint8_t> raw;
  try {
    raw = make_byte_decoder(manifest_codec(get_u32(file.data() + 8)))->decode(stored, raw_size);
  } catch (const InputError& e) {
    throw InputError(path + ": manifest: " + e.what());
  }
  json j = json::parse(raw.begin(), raw.end(), nullptr, false);
  require(!j.is_discarded() && j.is_object(), path + ": manifest is not valid JSON");
  ArtifactManifest m = manifest_from_json(j, path);
  m.version = get_u32(file.data() + 8);
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
      raw[g] = make_byte_decoder(group.codec)->decode(stored, group.raw_size);
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
        d.values = make_tensor_decoder(t.codec)->decode(views, TensorShape{t.shape});
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

// A .pgz artifact from anywhere. First input byte even: the rest is the file as it is (header,
// magic, version, sizes, checksums). Odd: the rest is a manifest's JSON, a 0 byte, then the
// stored groups; the target wraps them in a valid header and fixes each group's stored checksum,
// so the fuzzer reaches the manifest checks and every group's byte-codec decoder (a mutation
// could never match a CRC-32 by itself).
#include <nlohmann/json.hpp>

#include "artifact/artifact.h"
#include "codecs/byte_codec.h"
#include "core/checksum.h"
#include "fuzz/fuzz_support.h"

namespace {
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

std::vector<uint8_t> wrap(std::span<const uint8_t> rest) {
  auto zero = std::find(rest.begin(), rest.end(), uint8_t{0});
  std::string manifest_text(rest.begin(), zero);
  std::span<const uint8_t> groups = rest.subspan(std::min(rest.size(), manifest_text.size() + 1));
  auto manifest = nlohmann::json::parse(manifest_text, nullptr, false);
  if (!manifest.is_discarded() && manifest.is_object() && manifest.contains("groups") &&
      manifest["groups"].is_array()) {
    size_t offset = 0;
    for (auto& g : manifest["groups"]) {
      if (!g.is_object() || !g.contains("stored_size") || !g["stored_size"].is_number_unsigned()) break;
      uint64_t stored = g["stored_size"].get<uint64_t>();
      if (stored > groups.size() - offset) break;
      g["stored_crc32"] = pgolf::crc32_of(groups.subspan(offset, stored));
      offset += stored;
    }
    manifest_text = manifest.dump();
  }
  std::span<const uint8_t> raw(reinterpret_cast<const uint8_t*>(manifest_text.data()), manifest_text.size());
  auto stored = pgolf::make_byte_codec(pgolf::manifest_codec(pgolf::kArtifactVersion))->encode(raw);
  std::vector<uint8_t> file = {0x89, 'P', 'G', 'Z', '\r', '\n', 0x1a, '\n'};
  put_u32(file, pgolf::kArtifactVersion);
  put_u32(file, static_cast<uint32_t>(raw.size()));
  put_u32(file, static_cast<uint32_t>(stored.size()));
  put_u32(file, pgolf::crc32_of(stored));
  file.insert(file.end(), stored.begin(), stored.end());
  file.insert(file.end(), groups.begin(), groups.end());
  return file;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::span<const uint8_t> rest(data + 1, size - 1);
  std::vector<uint8_t> wrapped;
  if (data[0] & 1) {
    wrapped = wrap(rest);
    rest = wrapped;
  }
  pgolf::fuzz::accept_input_error([&] { (void)pgolf::decode_artifact(rest, "input.pgz"); });
  return 0;
}

#include "artifact/profile.h"

#include <algorithm>

#include "core/error.h"
#include "core/spec.h"

namespace pgolf {

namespace {
constexpr std::string_view kPythonByteCodecs[] = {"none", "shuffle", "rotate", "zlib", "xz", "vrans"};
}

DecoderProfile decoder_profile(std::string_view name) {
  require(name == "native" || name == "python", "unknown decoder profile '" + std::string(name) + "' (native or python)");
  return name == "python" ? DecoderProfile::Python : DecoderProfile::Native;
}

std::string default_compressor(DecoderProfile profile) {
  return profile == DecoderProfile::Python ? "auto:for=python" : "auto";
}

void require_decodable(DecoderProfile profile, std::string_view byte_codec_spec, std::string_view what) {
  if (profile == DecoderProfile::Native) return;
  for (const SpecStage& stage : parse_spec(byte_codec_spec)) {
    const bool reads = std::find(std::begin(kPythonByteCodecs), std::end(kPythonByteCodecs), stage.name) !=
                           std::end(kPythonByteCodecs) ||
                       (stage.name == "auto" && stage.get("for") == "python");
    require(reads, std::string(what) + " '" + std::string(byte_codec_spec) +
                       "' is not one the Python decoder reads (it reads none, shuffle, rotate, zlib, xz and vrans; "
                       "auto:for=python chooses among them)");
  }
}

}  // namespace pgolf

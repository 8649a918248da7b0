// Who decodes an artifact. native: pgolf itself, every codec. python: the exported decoder
// (python/pgolf_decode.py, numpy and Python's standard library, written by pgolf export-decoder),
// which reads every tensor decoder and the byte codecs none, shuffle, rotate, zlib, xz and vrans;
// auto:for=python chooses among them.
#pragma once
#include <string>
#include <string_view>

namespace pgolf {

enum class DecoderProfile { Native, Python };

DecoderProfile decoder_profile(std::string_view name);  // "native" or "python"; InputError otherwise
std::string default_compressor(DecoderProfile profile);  // auto, or auto:for=python
// InputError, naming `what`, unless the profile's decoder reads every stage of this byte codec spec.
void require_decodable(DecoderProfile profile, std::string_view byte_codec_spec, std::string_view what);

}  // namespace pgolf

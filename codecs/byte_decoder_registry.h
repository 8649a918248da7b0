// The factories behind make_byte_decoder, one per decoder file, and the parameter readers that
// encoder and decoder share, so both accept exactly the same specs.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "codecs/byte_decoder.h"
#include "core/spec.h"

namespace pgolf {

std::unique_ptr<ByteDecoder> make_zstd_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_zlib_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_none_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_shuffle_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_rotate_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_rans_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_auto_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_xz_decoder(const SpecStage& stage);
std::unique_ptr<ByteDecoder> make_vrans_decoder(const SpecStage& stage);

int zstd_level(const SpecStage& stage);  // "zstd[:L]", L = 1..22 (19 by default)
inline constexpr int kZstdMaxWindowLog = 27;
int zlib_level(const SpecStage& stage);  // "zlib[:L]", L = 1..9 (9 by default)
int xz_preset(const SpecStage& stage);    // "xz[:P]", P = 0..9 (9 by default), always extreme
void require_no_params(const SpecStage& stage);
// The element width W of "shuffle:W" or "rotate:W": 2, 4 or 8; InputError otherwise.
size_t element_width_param(const SpecStage& stage);
// Whole elements rotate one bit (left to encode, right to decode); a tail shorter than an element is copied.
std::vector<uint8_t> rotate_elements(std::span<const uint8_t> in, size_t width, bool left);
// "auto[:width=W][,for=python]": W-byte symbols (1, 2, 4 or 8); only codecs the Python decoder reads.
struct AutoSettings {
  int width = 1;
  bool python = false;
  std::string spec() const;
};
AutoSettings auto_settings(const SpecStage& stage);
// The codecs "auto" chooses among, as they code its symbols, in the order its index byte counts them.
std::vector<std::string> auto_candidates(const AutoSettings& settings);

}  // namespace pgolf

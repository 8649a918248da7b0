// The factories behind make_byte_codec; one per implementation file.
#pragma once
#include <memory>

#include "codecs/byte_codec.h"
#include "core/spec.h"

namespace pgolf {

std::unique_ptr<ByteCodec> make_zstd_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_zlib_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_none_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_shuffle_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_rotate_codec(const SpecStage& stage);
// The element width W of "shuffle:W" or "rotate:W": 2, 4 or 8; InputError otherwise.
size_t element_width_param(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_rans_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_auto_codec(const SpecStage& stage);

}  // namespace pgolf

// The factories behind make_byte_codec; one per encoder file.
#pragma once
#include <memory>

#include "codecs/byte_codec.h"
#include "core/spec.h"

namespace pgolf {

std::unique_ptr<ByteCodec> make_zstd_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_zlib_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_xz_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_none_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_shuffle_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_rotate_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_rans_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_vrans_codec(const SpecStage& stage);
std::unique_ptr<ByteCodec> make_auto_codec(const SpecStage& stage);

}  // namespace pgolf

// The codecs the decoder and round-trip targets pick from (the input's first byte chooses).
// Both come from their registries (byte codecs by name, tensor codecs by their table's example
// specs), so a newly registered codec is fuzzed without an edit here.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "codecs/byte_codec.h"
#include "core/error.h"
#include "quant/tensor_codec.h"

namespace pgolf::fuzz {

// Every registered byte codec with its default parameters (or the first of "2", "4" it accepts),
// its spec for 2- and 4-byte symbols, and behind each size-preserving transform.
inline const std::vector<std::unique_ptr<ByteCodec>>& byte_codecs() {
  static const auto codecs = [] {
    std::vector<std::string> specs;
    for (const auto& name : byte_codec_names()) {
      for (const std::string& spec : {name, name + ":2", name + ":4"}) {
        std::unique_ptr<ByteCodec> codec;
        try {
          codec = make_byte_codec(spec);
        } catch (const InputError&) {
          continue;
        }
        specs.push_back(codec->spec());
        specs.push_back(codec->spec_for_symbols(2));
        specs.push_back(codec->spec_for_symbols(4));
        break;
      }
    }
    size_t plain = specs.size();
    for (size_t i = 0; i < plain; ++i) {
      for (const std::string& transform : {"shuffle:4", "rotate:2"}) {
        try {
          specs.push_back(make_byte_codec(transform + "+" + specs[i])->spec());
        } catch (const InputError&) {  // not every codec may follow a transform
        }
      }
    }
    std::vector<std::unique_ptr<ByteCodec>> out;
    for (const auto& spec : specs) out.push_back(make_byte_codec(spec));
    return out;
  }();
  return codecs;
}

// Every example spec of the tensor-codec table (quant/tensor_codec_registry.cpp): a new codec is
// fuzzed by adding its row. gptq's encoding needs a Hessian (an InputError without one); its
// decoding is its grid's.
inline const std::vector<std::unique_ptr<TensorCodec>>& tensor_codecs() {
  static const auto codecs = [] {
    std::vector<std::unique_ptr<TensorCodec>> out;
    for (const auto& row : tensor_codec_table())
      for (const auto& spec : row.examples) out.push_back(make_tensor_codec(spec));
    return out;
  }();
  return codecs;
}

// The decoder of every example's decoder spec (gptq's is its grid's).
inline const std::vector<std::unique_ptr<TensorDecoder>>& tensor_decoders() {
  static const auto decoders = [] {
    std::vector<std::unique_ptr<TensorDecoder>> out;
    for (const auto& codec : tensor_codecs()) out.push_back(make_tensor_decoder(codec->decoder_spec()));
    return out;
  }();
  return decoders;
}

}  // namespace pgolf::fuzz

// The codecs the decoder and round-trip targets pick from (the input's first byte chooses).
// Byte codecs come from the registry, so a newly registered one is fuzzed without an edit here;
// tensor codecs need parameters, so they are listed, one or more specs per registry row.
#pragma once
#include <cstdio>
#include <cstdlib>
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

// One or more specs per tensor codec in quant/tensor_codec_registry.cpp.
inline const std::vector<std::unique_ptr<TensorCodec>>& tensor_codecs() {
  static const auto codecs = [] {
    const char* specs[] = {
        "int8", "int6", "int4:clip=quantile:0.999", "int5:clip=std:3", "int3:clip=mse", "int2",
        "fp16", "bf16", "fp32",
        "kmeans:k=4", "kmeans:k=16,init=kmeanspp", "kmeans:k=8,method=exact", "kmeans:k=8,method=ecsq,lambda=0.01,groups=rows:2",
        "ecsq:relmse=0.01", "ecsq:bits=3,scope=row", "ecsq:step=0.1",
        "prune:0.1+int6", "prune:threshold=0.5+int4", "prune:0.5,scope=row+fp16",
        "lowrank:rank=2+fp16", "lowrank:energy=0.9+int8",
        "int6+lrcorr:rank=2", "int4+lrcorr:rank=1,factors=fp16",
        // Encoding needs a Hessian (an InputError without one); decoding is the grid's.
        "gptq+int6", "gptq:order=natural+ecsq:step=0.1", "gptq+ecsq:step=0.1+lrcorr:rank=1,weight=hessian",
    };
    std::vector<std::unique_ptr<TensorCodec>> out;
    for (const char* spec : specs) {
      try {
        out.push_back(make_tensor_codec(spec));
      } catch (const InputError& e) {  // the list went stale: say so instead of fuzzing less
        std::fprintf(stderr, "fuzz/codec_specs.h: %s\n", e.what());
        std::abort();
      }
    }
    return out;
  }();
  return codecs;
}

}  // namespace pgolf::fuzz

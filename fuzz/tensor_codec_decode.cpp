// Every tensor codec's decoder on arbitrary streams (what a corrupt artifact hands it): as many
// streams as the codec writes, of arbitrary sizes and bytes, for an arbitrary small shape. The
// answer is one value per element or InputError.
#include <cstdio>

#include "fuzz/codec_specs.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codecs = pgolf::fuzz::tensor_codecs();
  pgolf::fuzz::InputReader in(data, size);
  const auto& codec = *codecs[in.u8() % codecs.size()];
  pgolf::TensorShape shape{{1 + in.u8() % 32, 1 + in.u8() % 32}};

  // How many streams the codec writes for this shape: encode a ramp.
  std::vector<float> ramp(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<float>(i % 7) - 3.0f;
  size_t count = codec.encode(ramp, shape).size();

  std::vector<std::span<const uint8_t>> streams;
  for (size_t s = 0; s < count; ++s) {
    size_t length = in.u8() | size_t{in.u8()} << 8;
    streams.push_back(s + 1 == count ? in.rest() : in.take(length));
  }
  pgolf::fuzz::accept_input_error([&] {
    auto values = codec.decode(streams, shape);
    if (values.size() != static_cast<size_t>(shape.numel())) {
      std::fprintf(stderr, "%s decoded %zu values for %lld\n", codec.spec().c_str(), values.size(),
                   static_cast<long long>(shape.numel()));
      std::abort();
    }
  });
  return 0;
}

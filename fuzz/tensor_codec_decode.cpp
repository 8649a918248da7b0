// Every tensor decoder on arbitrary streams (what a corrupt artifact hands it): as many streams as
// it reads, of arbitrary sizes and bytes, for an arbitrary small shape. The answer is one value per
// element or InputError.
#include <cstdio>

#include "fuzz/codec_specs.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& decoders = pgolf::fuzz::tensor_decoders();
  pgolf::fuzz::InputReader in(data, size);
  const size_t which = in.u8() % decoders.size();
  const auto& decoder = *decoders[which];
  pgolf::TensorShape shape{{1 + in.u8() % 32, 1 + in.u8() % 32}};

  const size_t count = decoder.stream_count();
  std::vector<std::span<const uint8_t>> streams;
  for (size_t s = 0; s < count; ++s) {
    size_t length = in.u8() | size_t{in.u8()} << 8;
    streams.push_back(s + 1 == count ? in.rest() : in.take(length));
  }
  pgolf::fuzz::accept_input_error([&] {
    auto values = decoder.decode(streams, shape);
    if (values.size() != static_cast<size_t>(shape.numel())) {
      std::fprintf(stderr, "%s decoded %zu values for %lld\n", pgolf::fuzz::tensor_codecs()[which]->decoder_spec().c_str(),
                   values.size(), static_cast<long long>(shape.numel()));
      std::abort();
    }
  });
  return 0;
}

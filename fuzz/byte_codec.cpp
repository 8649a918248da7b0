// Every byte codec's decoder on arbitrary bytes with an arbitrary declared raw size: the answer
// is exactly raw_size bytes or InputError, and a small stream never allocates a huge raw_size.
#include <cstdio>

#include "fuzz/codec_specs.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codecs = pgolf::fuzz::byte_codecs();
  pgolf::fuzz::InputReader in(data, size);
  const auto& codec = *codecs[in.u8() % codecs.size()];
  size_t raw_size = in.u32();
  auto encoded = in.rest();
  pgolf::fuzz::accept_input_error([&] {
    auto raw = codec.decode(encoded, raw_size);
    if (raw.size() != raw_size) {
      std::fprintf(stderr, "%s decoded %zu bytes, %zu declared\n", codec.spec().c_str(), raw.size(), raw_size);
      std::abort();
    }
  });
  return 0;
}

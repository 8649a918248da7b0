// Every byte codec on arbitrary bytes: decode(encode(x)) == x, and so for the named encoding.
// A codec for 2- or 4-byte symbols may refuse bytes that are not whole symbols (InputError); any
// other refusal is a bug.
#include <cstdio>

#include "fuzz/codec_specs.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codecs = pgolf::fuzz::byte_codecs();
  pgolf::fuzz::InputReader in(data, size);
  const auto& codec = *codecs[in.u8() % codecs.size()];
  auto raw = in.rest();
  std::pair<std::string, std::vector<uint8_t>> named;
  try {
    named = codec.encode_named(raw);
  } catch (const pgolf::InputError&) {
    if (raw.size() % 4 == 0) throw;
    return 0;
  }
  const auto& [name, encoded] = named;
  auto decoded = pgolf::make_byte_codec(name)->decode(encoded, raw.size());
  if (!std::equal(decoded.begin(), decoded.end(), raw.begin(), raw.end())) {
    std::fprintf(stderr, "%s (stored as %s) does not round-trip %zu bytes\n", codec.spec().c_str(), name.c_str(),
                 raw.size());
    std::abort();
  }
  return 0;
}

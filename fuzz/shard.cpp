// A token shard from anywhere: magic, version, declared token count against the file size.
#include "data/shards.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = pgolf::fuzz::write_input("input_val_000000.bin", {data, size});
  pgolf::fuzz::accept_input_error([&] {
    auto shard = pgolf::TokenShard::open(path);
    uint64_t sum = 0;
    for (uint16_t t : shard.tokens()) sum += t;  // every declared token must be readable
    (void)sum;
  });
  return 0;
}

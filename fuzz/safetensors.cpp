// A safetensors file from anywhere: header length, JSON header, tensor table, data tiling, and the
// float conversion of every tensor it declares.
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pgolf::fuzz::open_checkpoint("input.safetensors", {data, size});
  return 0;
}

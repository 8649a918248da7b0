// A safetensors file from anywhere: header length, JSON header, tensor table, data tiling, and the
// float conversion of every tensor it declares.
#include "fuzz/fuzz_support.h"
#include "quant/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string path = pgolf::fuzz::write_input("input.safetensors", {data, size});
  pgolf::fuzz::accept_input_error([&] {
    auto checkpoint = pgolf::Checkpoint::open({path});
    for (const auto& t : checkpoint.tensors()) (void)t.to_floats();
  });
  return 0;
}

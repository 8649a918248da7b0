// A torch.save file from anywhere: the stored-zip reader, the restricted unpickler, storages and
// views, and the float conversion of every tensor it declares.
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pgolf::fuzz::open_checkpoint("input.pt", {data, size});
  return 0;
}

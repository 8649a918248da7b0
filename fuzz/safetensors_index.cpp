// A sharded checkpoint's index (model.safetensors.index.json) from anywhere, beside two real
// shards: the weight map must name files that exist and tensors that are in them.
#include "checkpoint/safetensors.h"
#include "fuzz/fuzz_support.h"

namespace {
void write_shards() {
  using pgolf::TensorData;
  std::vector<uint8_t> four_floats(16, 0);
  pgolf::write_safetensors((pgolf::fuzz::scratch_dir() / "model-00001-of-00002.safetensors").string(),
                           {TensorData{"a", pgolf::DType::F32, {2, 2}, four_floats}}, {{"format", "pt"}}, true);
  pgolf::write_safetensors((pgolf::fuzz::scratch_dir() / "model-00002-of-00002.safetensors").string(),
                           {TensorData{"b", pgolf::DType::F32, {4}, four_floats}}, {}, true);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = (write_shards(), true);
  (void)ready;
  std::string path = pgolf::fuzz::write_input("model.safetensors.index.json", {data, size});
  pgolf::fuzz::accept_input_error([&] { (void)pgolf::Checkpoint::open({path}); });
  return 0;
}

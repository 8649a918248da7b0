// The pickle inside a torch.save file, read as strictly as torch.load(weights_only=True) and
// more: a restricted unpickler that knows only the opcodes of protocols 2-4 that hold plain data
// and the few globals a state dict of tensors needs (collections.OrderedDict,
// torch._utils._rebuild_tensor_v2 and _rebuild_parameter, torch.<Type>Storage, torch.device).
// Nothing is ever called or imported: any other global or opcode is an InputError naming it.
// Nested dicts flatten to dotted names; other leaves (numbers, strings, lists) are skipped.
// And the writer: the pickle torch.save makes for an OrderedDict of tensors.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace pgolf {

// A storage as the pickle names it: its key (the zip entry data/KEY), element type and size.
struct PickledStorage {
  std::string key;
  DType dtype;
  int64_t numel = 0;
};

// A tensor: a strided view (in elements) of one storage.
struct PickledTensor {
  std::string name;
  size_t storage = 0;  // index into PickledStateDict::storages
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

struct PickledStateDict {
  std::vector<PickledStorage> storages;  // one per key, first use first
  std::vector<PickledTensor> tensors;    // in the pickle's order
};

// what: the file and entry, for messages.
PickledStateDict unpickle_state_dict(std::span<const uint8_t> pickle, const std::string& what);

// The pickles at the front of a legacy torch.save file (PyTorch before 1.6, or
// _use_new_zipfile_serialization=False): torch's magic number, protocol 1001, the system info
// (little-endian only), the state dict (storages named by key, no views of views) and the list of
// storage keys in the order their data follows: each as an int64 element count, then the elements.
struct LegacyPickles {
  PickledStateDict state;
  std::vector<std::string> keys;
  size_t data_offset = 0;  // where the first storage's count begins
};
LegacyPickles unpickle_legacy(std::span<const uint8_t> file, const std::string& what);
// Whether the file begins with the legacy format's first pickle, torch's magic number.
bool has_legacy_torch_magic(std::span<const uint8_t> file);

// Protocol 2, as torch.save writes it: an OrderedDict of contiguous tensors, each on its own storage.
std::vector<uint8_t> pickle_state_dict(const PickledStateDict& state);

// "FloatStorage" for F32, ...; what the pickle names and what torch.<name> is.
std::string storage_type_name(DType dtype);

}  // namespace pgolf

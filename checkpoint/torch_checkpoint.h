// PyTorch checkpoints: a torch.save file of a state dict (the zip format of PyTorch >= 1.6:
// ARCHIVE/data.pkl, ARCHIVE/data/KEY storages, ARCHIVE/byteorder, ARCHIVE/version; and the legacy
// format of older versions and _use_new_zipfile_serialization=False), read with
// the restricted unpickler of quant/torch_pickle.h, and written back so that
// torch.load(weights_only=True) reads it. Checkpoint::open reads these files beside safetensors.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace pgolf {

// A torch.save file's tensors. A contiguous view's bytes lie in the file itself (`bytes`' spans
// point into it); a strided one is gathered into `owned`, which the tensors' spans then point into.
struct TorchTensors {
  std::vector<TensorRef> tensors;
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> owned;
};

// Whether bytes begin as a torch.save file does (a zip archive, or a legacy pickle).
bool looks_like_torch_file(std::span<const uint8_t> bytes);

// InputError naming the file for anything but a state dict of tensors in the zip format: a
// global or opcode outside the allowlist, a view outside its storage, sizes that overflow or that
// the file does not hold, a big-endian one.
TorchTensors read_torch_tensors(std::span<const uint8_t> file, const std::string& path);

// A torch.save image of the tensors (an OrderedDict in the checkpoint's order, each on its own
// storage, entries 64-byte aligned), and the atomic writer of one.
std::vector<uint8_t> serialize_torch(const std::vector<TensorData>& tensors);
void write_torch(const std::string& path, const std::vector<TensorData>& tensors, bool overwrite);

}  // namespace pgolf

// Checkpoints in the safetensors format: one file, several files, or a sharded set
// (an HF *.safetensors.index.json, or every PREFIX-*-of-N.safetensors), memory-mapped and
// strictly validated; and an atomic writer that keeps __metadata__. torch.save files of state
// dicts (quant/torch_checkpoint.h) open as checkpoints too.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace pgolf {

struct TensorRef {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // little-endian elements, inside a mapped file
  std::string file;                // where it came from, for error messages

  int64_t numel() const { return element_count(shape); }
  std::vector<float> to_floats() const;  // float conversion on demand
};

class Checkpoint {
 public:
  // paths: safetensors files, an *.safetensors.index.json, a folder (its index, else every
  // *.safetensors, *.pt and *.pth in it), or one shard of a PREFIX-k-of-N set (the whole set is
  // read); any file that begins as a torch.save file does is read as one.
  // Throws InputError naming the file and tensor on anything malformed.
  static Checkpoint open(const std::vector<std::string>& paths);

  const std::vector<TensorRef>& tensors() const { return tensors_; }  // sorted by name
  const TensorRef* find(const std::string& name) const;
  const TensorRef& at(const std::string& name) const;  // InputError when missing
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<std::shared_ptr<const MappedFile>> maps_;
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> owned_;  // gathered strided views of .pt files
  std::vector<TensorRef> tensors_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::string> files_;
};

// One tensor to write: raw little-endian bytes of dtype, shape.
struct TensorData {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Serialises tensors (sorted by name) with metadata as one safetensors image.
std::vector<uint8_t> serialize_safetensors(const std::vector<TensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata);
// Writes it atomically; an existing path is replaced only when overwrite is set.
void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata, bool overwrite);

}  // namespace pgolf

#include "checkpoint/torch_checkpoint.h"

#include <cstring>
#include <map>

#include "checkpoint/torch_pickle.h"
#include "checkpoint/zip_store.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr uint8_t kZipMagic[] = {'P', 'K', 3, 4};

bool is_zip(std::span<const uint8_t> bytes) {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), kZipMagic, 4) == 0;
}

// The elements a view reaches: InputError naming the tensor when the view leaves its storage or
// its sizes overflow. Returns the element count.
int64_t check_view(const PickledTensor& t, const PickledStorage& s, const std::string& where) {
  const std::string what = where + ": tensor '" + t.name + "'";
  int64_t numel = 1, last = t.offset;
  bool empty = false;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] == 0) empty = true;
    int64_t reach = 0;
    if (__builtin_mul_overflow(t.shape[d], numel, &numel) ||
        (t.shape[d] > 0 && (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &reach) ||
                            __builtin_add_overflow(last, reach, &last))))
      throw InputError(what + ": its size or stride overflows");
  }
  if (!empty && last >= s.numel)
    throw InputError(what + " reaches element " + std::to_string(last) + " of storage '" + s.key + "', which has " +
                     std::to_string(s.numel));
  return empty ? 0 : numel;
}

// Row-major strides of shape, in elements.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size());
  int64_t step = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    stride[d] = step;
    step *= shape[d];
  }
  return stride;
}

// Row-major, whatever the strides of dimensions of size 1 (they are never stepped along).
bool is_contiguous(const PickledTensor& t) {
  const std::vector<int64_t> expected = contiguous_strides(t.shape);
  for (size_t d = 0; d < t.shape.size(); ++d)
    if (t.shape[d] != 1 && t.stride[d] != expected[d]) return false;
  return true;
}

// A strided view's elements in row-major order.
std::vector<uint8_t> gather(const PickledTensor& t, std::span<const uint8_t> storage, size_t element, int64_t numel) {
  std::vector<uint8_t> out(static_cast<size_t>(numel) * element);
  std::vector<int64_t> index(t.shape.size(), 0);
  for (int64_t i = 0; i < numel; ++i) {
    int64_t at = t.offset;
    for (size_t d = 0; d < index.size(); ++d) at += index[d] * t.stride[d];
    std::memcpy(out.data() + static_cast<size_t>(i) * element, storage.data() + static_cast<size_t>(at) * element, element);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

bool looks_like_torch_file(std::span<const uint8_t> bytes) {
  return is_zip(bytes) || has_legacy_torch_magic(bytes);
}

namespace {

// The zip format: the state dict from ARCHIVE/data.pkl, each storage's bytes from ARCHIVE/data/KEY.
PickledStateDict read_zip_format(std::span<const uint8_t> file, const std::string& path,
                                 std::map<std::string, std::span<const uint8_t>>& storage_bytes) {
  std::map<std::string, std::span<const uint8_t>> entries;
  std::string archive;  // the folder every entry is in: ARCHIVE/data.pkl
  for (ZipEntry& e : read_stored_zip(file, path)) {
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos) throw InputError(path + ": zip entry '" + e.name + "' is outside the archive folder");
    const std::string folder = e.name.substr(0, slash);
    if (e.name.substr(slash + 1) == "data.pkl") archive = folder;
    entries.emplace(std::move(e.name), e.data);
  }
  if (archive.empty()) throw InputError(path + ": a zip archive without ARCHIVE/data.pkl: not a torch.save file");
  const std::string prefix = archive + "/";
  if (auto order = entries.find(prefix + "byteorder"); order != entries.end()) {
    const std::string text(order->second.begin(), order->second.end());
    if (text != "little") throw InputError(path + ": byteorder '" + text + "': only little-endian files are read");
  }
  PickledStateDict state = unpickle_state_dict(entries.at(prefix + "data.pkl"), path + " (" + prefix + "data.pkl)");
  for (const PickledStorage& s : state.storages) {
    auto it = entries.find(prefix + "data/" + s.key);
    if (it == entries.end()) throw InputError(path + ": storage '" + s.key + "' has no entry " + prefix + "data/" + s.key);
    storage_bytes[s.key] = it->second;
  }
  return state;
}

// The legacy format: after the pickles, each listed storage as an int64 element count, then its
// elements, in the listed order, to the end of the file.
PickledStateDict read_legacy_format(std::span<const uint8_t> file, const std::string& path,
                                    std::map<std::string, std::span<const uint8_t>>& storage_bytes) {
  LegacyPickles legacy = unpickle_legacy(file, path);
  std::map<std::string, const PickledStorage*> by_key;
  for (const PickledStorage& s : legacy.state.storages) by_key[s.key] = &s;
  size_t at = legacy.data_offset;
  for (const std::string& key : legacy.keys) {
    auto it = by_key.find(key);
    if (it == by_key.end()) throw InputError(path + ": storage '" + key + "' is listed but no tensor uses it");
    if (file.size() - at < 8) throw InputError(path + ": truncated before storage '" + key + "'");
    int64_t count = 0;
    std::memcpy(&count, file.data() + at, 8);
    at += 8;
    uint64_t bytes = 0;
    if (count != it->second->numel ||
        __builtin_mul_overflow(static_cast<uint64_t>(count), dtype_size(it->second->dtype), &bytes) ||
        bytes > file.size() - at)
      throw InputError(path + ": storage '" + key + "' declares " + std::to_string(count) + " elements, which the " +
                       "file does not hold as its pickle says");
    storage_bytes[key] = file.subspan(at, bytes);
    at += bytes;
  }
  if (at != file.size()) throw InputError(path + ": " + std::to_string(file.size() - at) + " bytes after the last storage");
  return legacy.state;
}

}  // namespace

TorchTensors read_torch_tensors(std::span<const uint8_t> file, const std::string& path) {
  std::map<std::string, std::span<const uint8_t>> storage_bytes;
  const PickledStateDict state = is_zip(file) ? read_zip_format(file, path, storage_bytes)
                                              : read_legacy_format(file, path, storage_bytes);
  std::vector<std::span<const uint8_t>> storages;
  for (const PickledStorage& s : state.storages) {
    auto it = storage_bytes.find(s.key);
    if (it == storage_bytes.end()) throw InputError(path + ": storage '" + s.key + "' is not in the file");
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(s.numel), dtype_size(s.dtype), &bytes) || bytes != it->second.size())
      throw InputError(path + ": storage '" + s.key + "' holds " + std::to_string(it->second.size()) + " bytes, not " +
                       std::to_string(s.numel) + " " + std::string(dtype_name(s.dtype)) + " elements");
    storages.push_back(it->second);
  }
  TorchTensors out;
  for (const PickledTensor& t : state.tensors) {
    const PickledStorage& s = state.storages[t.storage];
    const int64_t numel = check_view(t, s, path);
    const size_t element = dtype_size(s.dtype);
    std::span<const uint8_t> bytes;
    if (numel == 0) {
      bytes = {};
    } else if (is_contiguous(t)) {
      bytes = storages[t.storage].subspan(static_cast<size_t>(t.offset) * element, static_cast<size_t>(numel) * element);
    } else {
      // A gathered copy is never larger than the storage it reads (no stride-0 expansions), so
      // what is allocated is bounded by the file.
      if (numel > s.numel)
        throw InputError(path + ": tensor '" + t.name + "' has more elements than its storage (an expanded view)");
      out.owned.push_back(std::make_shared<const std::vector<uint8_t>>(gather(t, storages[t.storage], element, numel)));
      bytes = *out.owned.back();
    }
    out.tensors.push_back({t.name, s.dtype, t.shape, bytes, path});
  }
  return out;
}

std::vector<uint8_t> serialize_torch(const std::vector<TensorData>& tensors) {
  PickledStateDict state;
  for (const TensorData& t : tensors) {
    const std::string key = std::to_string(state.storages.size());
    state.storages.push_back({key, t.dtype, static_cast<int64_t>(t.bytes.size() / dtype_size(t.dtype))});
    state.tensors.push_back({t.name, state.storages.size() - 1, 0, t.shape, contiguous_strides(t.shape)});
  }
  const std::string archive = "archive/";
  const std::vector<uint8_t> pickle = pickle_state_dict(state);
  static constexpr char kLittle[] = "little", kVersion[] = "3\n";
  auto bytes_of = [](const char* s) { return std::span(reinterpret_cast<const uint8_t*>(s), std::strlen(s)); };
  std::vector<ZipEntry> entries{{archive + "data.pkl", pickle}, {archive + "byteorder", bytes_of(kLittle)}};
  for (size_t i = 0; i < tensors.size(); ++i) entries.push_back({archive + "data/" + state.storages[i].key, tensors[i].bytes});
  entries.push_back({archive + "version", bytes_of(kVersion)});
  return write_stored_zip(entries);
}

void write_torch(const std::string& path, const std::vector<TensorData>& tensors, bool overwrite) {
  write_file_atomic(path, serialize_torch(tensors), overwrite);
}

}  // namespace pgolf

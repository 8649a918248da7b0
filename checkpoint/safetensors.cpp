#include "checkpoint/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string_view>
#include <tuple>

#include "checkpoint/torch_checkpoint.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace pgolf {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kIndexSuffix = ".safetensors.index.json";
constexpr std::string_view kFileSuffix = ".safetensors";
constexpr std::string_view kTorchSuffixes[] = {".pt", ".pth"};

std::string json_string(const std::string& s) { return json(s).dump(); }

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined += separator;
    joined += parts[i];
  }
  return joined;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && std::string_view(s).substr(s.size() - suffix.size()) == suffix;
}

// Bytes of dtype × shape, or nothing when a dimension is negative or the count overflows.
std::optional<uint64_t> byte_size(DType dtype, std::span<const int64_t> shape) {
  uint64_t bytes = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) return std::nullopt;
  }
  return bytes;
}

// nlohmann::json keeps one of two equal keys silently; this parse reports the second instead.
json parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> keys_per_open_object;
  std::string tensor;  // the top-level key being parsed, to name it in messages
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys_per_open_object.emplace_back();
    if (event == json::parse_event_t::object_end) keys_per_open_object.pop_back();
    if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      bool top_level = keys_per_open_object.size() == 1;
      if (!keys_per_open_object.back().insert(key).second) {
        if (top_level) throw InputError(what + ": " + json_string(key) + " appears twice");
        throw InputError(what + ": key " + json_string(key) + " appears twice in " + json_string(tensor));
      }
      if (top_level) tensor = key;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    throw InputError(what + ": not valid JSON: " + e.what());
  }
}

struct ParsedFile {
  std::vector<TensorRef> tensors;
  std::map<std::string, std::string> metadata;
};

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file) {
  require(value.is_object(), file + ": __metadata__ must be an object of strings");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    require(v.is_string(), file + ": __metadata__ value of " + json_string(key) + " must be a string, not " + v.dump());
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

TensorRef parse_tensor(const std::string& name, const json& entry, std::span<const uint8_t> data,
                       const std::string& file) {
  const std::string where = file + ": tensor " + json_string(name) + ": ";
  require(entry.is_object(), where + "entry must be an object, not " + entry.dump());

  auto dtype_it = entry.find("dtype");
  require(dtype_it != entry.end() && dtype_it->is_string(), where + "needs \"dtype\" as a string");
  auto dtype = dtype_from_name(dtype_it->get<std::string>());
  require(dtype.has_value(), where + "unknown dtype " + dtype_it->dump());

  auto shape_it = entry.find("shape");
  require(shape_it != entry.end() && shape_it->is_array(), where + "needs \"shape\" as an array of integers");
  std::vector<int64_t> shape;
  for (const auto& d : *shape_it) {
    require(d.is_number_integer(), where + "shape " + shape_it->dump() + " must hold integers");
    require(!(d.is_number_unsigned() && d.get<uint64_t>() > INT64_MAX),
            where + "shape " + shape_it->dump() + " is too large");
    require(d.get<int64_t>() >= 0, where + "shape " + shape_it->dump() + " has a negative dimension");
    shape.push_back(d.get<int64_t>());
  }
  auto expected_bytes = byte_size(*dtype, shape);
  require(expected_bytes.has_value(), where + "shape " + shape_it->dump() + " overflows the element count");

  auto offsets_it = entry.find("data_offsets");
  require(offsets_it != entry.end() && offsets_it->is_array() && offsets_it->size() == 2 &&
              (*offsets_it)[0].is_number_unsigned() && (*offsets_it)[1].is_number_unsigned(),
          where + "needs \"data_offsets\" as two non-negative integers [begin, end]");
  uint64_t begin = (*offsets_it)[0].get<uint64_t>();
  uint64_t end = (*offsets_it)[1].get<uint64_t>();
  require(begin <= end, where + "data_offsets " + offsets_it->dump() + " end before they begin");
  require(end <= data.size(), where + "data_offsets " + offsets_it->dump() + " run past the data section's " +
                                  std::to_string(data.size()) + " bytes");
  require(end - begin == *expected_bytes, where + "data_offsets " + offsets_it->dump() + " hold " +
                                              std::to_string(end - begin) + " bytes but " +
                                              std::string(dtype_name(*dtype)) + " " + shape_string(shape) + " needs " +
                                              std::to_string(*expected_bytes));
  return TensorRef{name, *dtype, std::move(shape), data.subspan(begin, end - begin), file};
}

// The spec asks that the tensors tile the data section exactly: no overlap, no gap.
void check_tiling(const std::vector<TensorRef>& tensors, std::span<const uint8_t> data, const std::string& file) {
  struct Extent {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Extent> extents;
  for (const auto& t : tensors) {
    auto begin = static_cast<uint64_t>(t.bytes.data() - data.data());
    extents.push_back({begin, begin + t.bytes.size(), &t.name});
  }
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& e : extents) {
    if (e.begin < covered)
      throw InputError(file + ": tensors " + json_string(*previous) + " and " + json_string(*e.name) +
                       " overlap in the data section");
    if (e.begin > covered)
      throw InputError(file + ": bytes " + std::to_string(covered) + ".." + std::to_string(e.begin) +
                       " of the data section belong to no tensor");
    covered = e.end;
    previous = e.name;
  }
  if (covered < data.size())
    throw InputError(file + ": bytes " + std::to_string(covered) + ".." + std::to_string(data.size()) +
                     " of the data section belong to no tensor");
}

ParsedFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& file) {
  require(bytes.size() >= 8, file + ": " + std::to_string(bytes.size()) + " bytes is too short for a safetensors file");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  require(header_size > 0, file + ": header length is 0");
  require(header_size <= kMaxHeaderBytes, file + ": header length " + std::to_string(header_size) +
                                              " is over the limit of " + std::to_string(kMaxHeaderBytes));
  require(header_size <= bytes.size() - 8, file + ": header length " + std::to_string(header_size) +
                                               " runs past the end of the " + std::to_string(bytes.size()) +
                                               "-byte file");
  std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8), header_size);
  std::span<const uint8_t> data = bytes.subspan(8 + header_size);

  json header = parse_json_strict(header_text, file + ": header");
  require(header.is_object(), file + ": header must be a JSON object, not " + std::string(header.type_name()));

  ParsedFile parsed;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey)
      parsed.metadata = parse_metadata(entry, file);
    else
      parsed.tensors.push_back(parse_tensor(name, entry, data, file));
  }
  check_tiling(parsed.tensors, data, file);
  return parsed;
}

// What to read: files in order (each once), and the index entries to check against them.
struct Sources {
  struct IndexEntry {
    std::string tensor, file, index;
  };
  std::vector<std::string> files;
  std::set<std::string> canonical_files;
  std::vector<IndexEntry> index_entries;

  void add_file(const std::string& path) {
    if (canonical_files.insert(fs::weakly_canonical(path).string()).second) files.push_back(path);
  }

  // A PREFIX-k-of-N.safetensors name stands for the whole set, every shard required.
  void add_file_or_shard_set(const std::string& path) {
    static const std::regex shard_name(R"((.*)-(\d{1,9})-of-(\d{1,9})\.safetensors)");
    fs::path p(path);
    std::smatch m;
    std::string filename = p.filename().string();
    if (!std::regex_match(filename, m, shard_name)) return add_file(path);
    std::string prefix = m[1], shard_text = m[2], count_text = m[3];
    int64_t count = std::stoll(count_text);
    int64_t shard = std::stoll(shard_text);
    require(shard >= 1 && shard <= count,
            path + ": shard " + std::to_string(shard) + " is not in 1.." + std::to_string(count));
    for (int64_t k = 1; k <= count; ++k) {
      std::string number = std::to_string(k);
      number.insert(0, shard_text.size() > number.size() ? shard_text.size() - number.size() : 0, '0');
      std::string shard_path =
          (p.parent_path() / (prefix + "-" + number + "-of-" + count_text + ".safetensors")).string();
      require(fs::is_regular_file(shard_path),
              path + ": shard " + std::to_string(k) + " of " + std::to_string(count) + " is missing: " + shard_path);
      add_file(shard_path);
    }
  }

  // HF's index: {"metadata": {...}, "weight_map": {tensor: file relative to the index}}.
  void add_index(const std::string& path) {
    auto map = MappedFile::open(path);
    std::string_view text(reinterpret_cast<const char*>(map->bytes().data()), map->bytes().size());
    json index = parse_json_strict(text, path);
    require(index.is_object(), path + ": must be a JSON object");
    auto weight_map = index.find("weight_map");
    require(weight_map != index.end() && weight_map->is_object(), path + ": needs \"weight_map\" as an object");
    fs::path folder = fs::path(path).parent_path();
    std::set<std::string> shard_files;
    for (const auto& [tensor, file] : weight_map->items()) {
      require(file.is_string(), path + ": weight_map entry " + json_string(tensor) + " must name a file");
      std::string shard_path = (folder / file.get<std::string>()).string();
      require(fs::is_regular_file(shard_path), path + ": weight_map names missing file " + file.get<std::string>() +
                                                   " (for " + json_string(tensor) + ")");
      shard_files.insert(shard_path);
      index_entries.push_back({tensor, shard_path, path});
    }
    for (const auto& f : shard_files) add_file(f);
  }

  // A folder: its one index, else every *.safetensors in it.
  void add_folder(const std::string& path) {
    std::vector<std::string> indexes, files_here;
    for (const auto& entry : fs::directory_iterator(path)) {
      if (!entry.is_regular_file()) continue;
      std::string name = entry.path().filename().string();
      if (ends_with(name, kIndexSuffix)) indexes.push_back(entry.path().string());
      if (ends_with(name, kFileSuffix)) files_here.push_back(entry.path().string());
      for (auto suffix : kTorchSuffixes)
        if (ends_with(name, suffix)) files_here.push_back(entry.path().string());
    }
    if (indexes.size() == 1) return add_index(indexes[0]);
    require(!files_here.empty(), path + ": folder holds no *.safetensors files (nor torch.save *.pt, *.pth)");
    std::sort(files_here.begin(), files_here.end());
    for (const auto& f : files_here) add_file_or_shard_set(f);
  }

  void add(const std::string& path) {
    require(fs::exists(path), path + ": no such file or folder");
    if (fs::is_directory(path)) return add_folder(path);
    if (ends_with(path, ".index.json")) return add_index(path);
    add_file_or_shard_set(path);
  }
};

}  // namespace

std::vector<float> TensorRef::to_floats() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  to_float(dtype, bytes, out);
  return out;
}

Checkpoint Checkpoint::open(const std::vector<std::string>& paths) {
  require(!paths.empty(), "no checkpoint path given");
  Sources sources;
  try {
    for (const auto& path : paths) sources.add(path);
  } catch (const fs::filesystem_error& e) {  // e.g. an unreadable folder; its message names the path
    throw InputError(e.what());
  }

  Checkpoint checkpoint;
  std::map<std::string, std::string> metadata_source;  // key -> file it came from, for conflicts
  for (const auto& file : sources.files) {
    auto map = MappedFile::open(file);
    ParsedFile parsed;
    if (looks_like_torch_file(map->bytes())) {
      // A state dict has no metadata of its own; "format": "pt" is what safetensors files saved
      // from PyTorch say, so a checkpoint gives the same artifact in either container.
      TorchTensors torch = read_torch_tensors(map->bytes(), file);
      parsed.tensors = std::move(torch.tensors);
      parsed.metadata = {{"format", "pt"}};
      for (auto& owned : torch.owned) checkpoint.owned_.push_back(std::move(owned));
    } else {
      parsed = parse_safetensors(map->bytes(), file);
    }
    for (const auto& [key, value] : parsed.metadata) {
      auto [it, inserted] = checkpoint.metadata_.emplace(key, value);
      if (inserted) metadata_source[key] = file;
      if (!inserted && it->second != value)
        throw InputError(file + ": __metadata__ " + json_string(key) + " is " + json_string(value) + " but " +
                         json_string(it->second) + " in " + metadata_source[key]);
    }
    for (auto& t : parsed.tensors) checkpoint.tensors_.push_back(std::move(t));
    checkpoint.maps_.push_back(std::move(map));
    checkpoint.files_.push_back(file);
  }

  auto& tensors = checkpoint.tensors_;
  std::sort(tensors.begin(), tensors.end(), [](const TensorRef& a, const TensorRef& b) { return a.name < b.name; });
  for (size_t i = 1; i < tensors.size(); ++i) {
    require(tensors[i].name != tensors[i - 1].name, "tensor " + json_string(tensors[i].name) + " is in both " +
                                                        tensors[i - 1].file + " and " + tensors[i].file);
  }
  for (const auto& entry : sources.index_entries) {
    const TensorRef* t = checkpoint.find(entry.tensor);
    require(
        t != nullptr && fs::equivalent(t->file, entry.file),
        entry.index + ": tensor " + json_string(entry.tensor) + " is mapped to " + entry.file + " but is not in it");
  }
  require(!tensors.empty(), join(checkpoint.files_, ", ") + ": no tensors found");
  return checkpoint;
}

const TensorRef* Checkpoint::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorRef& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorRef& Checkpoint::at(const std::string& name) const {
  const TensorRef* t = find(name);
  if (t == nullptr) {
    std::string where = files_.empty() ? std::string("the checkpoint") : files_.front();
    if (files_.size() > 1) where += " and " + std::to_string(files_.size() - 1) + " more files";
    throw InputError(where + ": no tensor named " + json_string(name));
  }
  return *t;
}

std::vector<uint8_t> serialize_safetensors(const std::vector<TensorData>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorData*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorData* a, const TensorData* b) { return a->name < b->name; });

  // Same layout as the reference writer: compact JSON, "dtype", "shape", "data_offsets" in that order.
  std::vector<std::string> entries;
  if (!metadata.empty()) {
    std::vector<std::string> pairs;
    for (const auto& [key, value] : metadata) pairs.push_back(json_string(key) + ":" + json_string(value));
    entries.push_back(json_string(std::string(kMetadataKey)) + ":{" + join(pairs, ",") + "}");
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const TensorData& t = *sorted[i];
    if (t.name == kMetadataKey) throw std::logic_error("serialize_safetensors: a tensor cannot be named __metadata__");
    if (i > 0 && t.name == sorted[i - 1]->name)
      throw std::logic_error("serialize_safetensors: tensor " + json_string(t.name) + " given twice");
    auto expected = byte_size(t.dtype, t.shape);
    if (!expected || *expected != t.bytes.size())
      throw std::logic_error("serialize_safetensors: tensor " + json_string(t.name) + " has " +
                             std::to_string(t.bytes.size()) + " bytes, not " + std::string(dtype_name(t.dtype)) + " " +
                             shape_string(t.shape));
    std::vector<std::string> dims;
    for (int64_t d : t.shape) dims.push_back(std::to_string(d));
    entries.push_back(json_string(t.name) + ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) + "\",\"shape\":[" +
                      join(dims, ",") + "],\"data_offsets\":[" + std::to_string(offset) + "," +
                      std::to_string(offset + t.bytes.size()) + "]}");
    offset += t.bytes.size();
  }
  std::string header = "{";
  header += join(entries, ",");
  header += "}";
  // Spaces after the JSON put the data section on an 8-byte boundary (8 + header size).
  header.append((8 - header.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + header.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (const TensorData* t : sorted) out.insert(out.end(), t->bytes.begin(), t->bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata, bool overwrite) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata), overwrite);
}

}  // namespace pgolf

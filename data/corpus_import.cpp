#include "data/corpus_import.h"

#include <lzma.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "data/shards.h"
#include "data/tokenizer.h"

namespace pgolf {

namespace fs = std::filesystem;

namespace {

struct ShardFile {
  std::string path;   // in in_dir
  std::string split;  // "val" or "train"
  std::string name;   // in out_dir: the input's name without .xz
};

std::vector<ShardFile> list_shards(const std::string& in_dir) {
  std::vector<ShardFile> shards;
  for (const auto& entry : fs::directory_iterator(in_dir)) {
    std::string file = entry.path().filename().string();
    std::string name = file.ends_with(".bin.xz") ? file.substr(0, file.size() - 3) : file;
    if (!entry.is_regular_file() || !name.ends_with(".bin")) continue;
    for (std::string split : {"val", "train"})
      if (name.find("_" + split + "_") != std::string::npos) shards.push_back({entry.path().string(), split, name});
  }
  std::sort(shards.begin(), shards.end(), [](const ShardFile& a, const ShardFile& b) { return a.name < b.name; });
  for (size_t i = 1; i < shards.size(); ++i)
    require(shards[i].name != shards[i - 1].name,
            in_dir + ": both " + shards[i - 1].name + " and " + shards[i - 1].name + ".xz; keep one");
  for (std::string split : {"val", "train"})
    require(std::any_of(shards.begin(), shards.end(), [&](const ShardFile& s) { return s.split == split; }),
            in_dir + ": no *_" + split + "_*.bin or .bin.xz token shards");
  return shards;
}

std::string find_one_model(const std::string& in_dir) {
  std::vector<std::string> models;
  for (const auto& entry : fs::directory_iterator(in_dir))
    if (entry.is_regular_file() && entry.path().extension() == ".model") models.push_back(entry.path().string());
  require(models.size() == 1, in_dir + ": " + (models.empty() ? std::string("no") : std::to_string(models.size())) +
                                  " *.model tokenizer files; an import needs exactly one");
  return models[0];
}

// Decompresses an .xz file into an atomically written target.
void decompress_xz(const std::string& xz_path, const std::string& target, bool overwrite) {
  auto input = MappedFile::open(xz_path);
  lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
    throw std::runtime_error("lzma_stream_decoder failed");
  stream.next_in = input->bytes().data();
  stream.avail_in = input->bytes().size();
  AtomicFile out(target, overwrite);
  std::vector<uint8_t> buffer(1 << 20);
  lzma_ret code = LZMA_OK;
  while (code == LZMA_OK) {
    stream.next_out = buffer.data();
    stream.avail_out = buffer.size();
    code = lzma_code(&stream, LZMA_FINISH);
    out.write({buffer.data(), buffer.size() - stream.avail_out});
  }
  lzma_end(&stream);
  require(code == LZMA_STREAM_END,
          xz_path + ": cannot decompress: " +
              (code == LZMA_FORMAT_ERROR ? "not an xz file"
               : code == LZMA_BUF_ERROR  ? "truncated"
                                         : "corrupt xz data (lzma error " + std::to_string(code) + ")"));
  out.commit();
}

void require_ids_below(const TokenShard& shard, int vocab_size, const std::string& shown_path,
                       const std::string& model) {
  auto tokens = shard.tokens();
  auto bad = std::find_if(tokens.begin(), tokens.end(), [&](uint16_t t) { return t >= vocab_size; });
  require(bad == tokens.end(), shown_path + ": token " + std::to_string(bad == tokens.end() ? 0 : *bad) +
                                   " at position " + std::to_string(bad - tokens.begin()) +
                                   " is not below the vocab size " + std::to_string(vocab_size) + " of " + model);
}

// Copies or decompresses one shard into out_dir and checks it; returns its token count.
size_t import_shard(const ShardFile& shard, const std::string& out_dir, int vocab_size, const std::string& model,
                    bool overwrite) {
  std::string target = out_dir + "/" + shard.name;
  if (!shard.path.ends_with(".xz")) {
    TokenShard tokens = TokenShard::open(shard.path);
    require_ids_below(tokens, vocab_size, shard.path, model);
    auto map = MappedFile::open(shard.path);
    write_file_atomic(target, map->bytes(), overwrite);
    return tokens.tokens().size();
  }
  decompress_xz(shard.path, target, overwrite);
  try {
    TokenShard tokens = TokenShard::open(target);
    require_ids_below(tokens, vocab_size, shard.path, model);
    return tokens.tokens().size();
  } catch (const InputError& e) {
    fs::remove(target);  // a bad shard does not stay in the corpus
    throw InputError(shard.path + " (decompressed): " + e.what());
  }
}

}  // namespace

nlohmann::ordered_json import_corpus(const std::string& in_dir, const std::string& out_dir, bool overwrite,
                                     const ProgressReport& progress) {
  require(fs::is_directory(in_dir), in_dir + ": not a folder");
  std::string model = find_one_model(in_dir);
  std::vector<ShardFile> shards = list_shards(in_dir);
  Tokenizer tokenizer = Tokenizer::load(model);
  require(!fs::exists(out_dir) || !fs::equivalent(in_dir, out_dir),
          out_dir + ": is the folder being imported; choose another --out");
  require_corpus_target(out_dir, overwrite);

  std::string model_copy = out_dir + "/" + fs::path(model).filename().string();
  write_file_atomic(model_copy, MappedFile::open(model)->bytes(), overwrite);
  std::vector<std::string> written = {"manifest.json", fs::path(model).filename().string()};

  nlohmann::ordered_json manifest;
  manifest["format"] = "pgolf corpus 1";
  manifest["made_by"] = "pgolf data import";
  manifest["imported_from"] = fs::absolute(in_dir).lexically_normal().string();
  manifest["tokenizer"] = tokenizer_manifest_entry(model_copy, tokenizer.vocab_size());
  for (std::string split : {"val", "train"})
    manifest["splits"][split] = {{"tokens", 0}, {"shards", nlohmann::ordered_json::array()}};
  size_t done = 0;
  for (const auto& shard : shards) {
    if (progress) progress("import shards", done, shards.size());
    size_t tokens = import_shard(shard, out_dir, tokenizer.vocab_size(), model, overwrite);
    auto& split = manifest["splits"][shard.split];
    split["tokens"] = split["tokens"].get<size_t>() + tokens;
    split["shards"].push_back(shard_manifest_entry(out_dir + "/" + shard.name, tokens));
    written.push_back(shard.name);
    ++done;
  }
  if (progress) progress("import shards", done, shards.size());

  finish_corpus(out_dir, manifest, written, overwrite);
  return manifest;
}

}  // namespace pgolf

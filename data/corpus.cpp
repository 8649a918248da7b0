#include "data/corpus.h"

#include <sentencepiece_trainer.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/parallel.h"
#include "data/corpus_text.h"
#include "data/shards.h"
#include "data/tokenizer.h"

namespace pgolf {

namespace fs = std::filesystem;

namespace {

constexpr const char* kShuffleDescription =
    "documents sorted bytewise, then permuted as Python's random.Random(seed).shuffle permutes them";


struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

// Runs a program (no shell) in `folder`, collecting what it prints.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& folder) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    if (::chdir(folder.c_str()) == 0) ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s in %s\n", args[0], folder.c_str());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  CommandResult result{0, {}};
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) result.output.append(buffer, n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return result;
}

// The command's output, or an InputError naming the command and its last error line.
std::string checked_output(const std::vector<std::string>& argv, const std::string& folder) {
  CommandResult result = run_command(argv, folder);
  if (result.exit_code == 0) return result.output;
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  std::string output = result.output.substr(0, result.output.find_last_not_of("\n") + 1);
  std::string last_line = output.substr(output.rfind('\n') + 1);  // npos + 1 == 0
  throw InputError(command + " failed (exit " + std::to_string(result.exit_code) + ")" +
                   (last_line.empty() ? "" : ": " + last_line));
}

// The one NAME_*.deb in folder, or "" when there is none.
std::string find_deb(const std::string& folder, const std::string& name) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::string file = entry.path().filename().string();
    if (file.starts_with(name + "_") && file.ends_with(".deb")) found.push_back(entry.path().string());
  }
  require(found.size() <= 1,
          folder + ": " + std::to_string(found.size()) + " " + name + "_*.deb files; remove all but the one to use");
  return found.empty() ? std::string() : found[0];
}

bool name_matches(const std::string& file_name, const std::vector<std::string>& suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(), [&](const std::string& suffix) {
    return suffix.empty() ? file_name.find('.') == std::string::npos : file_name.ends_with(suffix);
  });
}

// Python's seeding of its Mersenne Twister (init_by_array) as a seed sequence for std::mt19937,
// whose outputs then equal Python's genrand_uint32.
struct PythonSeedSequence {
  using result_type = uint32_t;
  std::vector<uint32_t> key;

  template <typename It>
  void generate(It begin, It end) const {
    constexpr size_t n = 624;
    std::vector<uint32_t> mt(n);
    mt[0] = 19650218u;
    for (uint32_t i = 1; i < n; ++i) mt[i] = 1812433253u * (mt[i - 1] ^ (mt[i - 1] >> 30)) + i;
    size_t i = 1, j = 0;
    for (size_t k = std::max(n, key.size()); k > 0; --k) {
      mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
      if (++i >= n) {
        mt[0] = mt[n - 1];
        i = 1;
      }
      if (++j >= key.size()) j = 0;
    }
    for (size_t k = n - 1; k > 0; --k) {
      mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
      if (++i >= n) {
        mt[0] = mt[n - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000u;
    std::copy(mt.begin(), mt.begin() + (end - begin), begin);
  }
};

// Python's _randbelow: the top bit_length(n) bits of a 32-bit draw, redrawn until below n.
uint32_t python_randbelow(std::mt19937& rng, uint32_t n) {
  int bits = std::bit_width(n);
  for (;;) {
    uint32_t r = static_cast<uint32_t>(rng()) >> (32 - bits);
    if (r < n) return r;
  }
}

std::string hex8(uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

std::string shard_name(const std::string& split, size_t index) {
  char name[64];
  std::snprintf(name, sizeof name, "corpus_%s_%06zu.bin", split.c_str(), index);
  return name;
}

// Feeds documents to SentencePiece's trainer as sentences.
class DocumentIterator : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentIterator(std::span<const CorpusDocument> documents) : documents_(documents) {}
  bool done() const override { return next_ >= documents_.size(); }
  void Next() override { ++next_; }
  const std::string& value() const override { return documents_[next_].text; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  std::span<const CorpusDocument> documents_;
  size_t next_ = 0;
};

// Parameter Golf's tokenizer settings, except character_coverage 0.995 (shared README).
std::map<std::string, std::string> sentencepiece_settings(int vocab_size) {
  return {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "nmt_nfkc"},
      {"add_dummy_prefix", "false"},
      {"pad_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"unk_id", "3"},
      {"hard_vocab_limit", "false"},
      {"character_coverage", "0.995"},
      {"max_sentence_length", "100000"},  // bytes: whole documents are the sentences
      {"input_sentence_size", "0"},       // every sentence, so no random sampling
      {"num_threads", "1"},               // BPE training gives the same pieces on 2 threads, and is slower
  };
}

struct Counts {
  size_t documents = 0;
  size_t bytes = 0;
  size_t tokens = 0;
  nlohmann::ordered_json json() const { return {{"documents", documents}, {"bytes", bytes}, {"tokens", tokens}}; }
};

}  // namespace

const std::vector<CorpusSource>& default_corpus_sources() {
  static const std::vector<CorpusSource> sources = {
      {"linux-doc-6.1", "", {".rst", ".txt", ".rst.gz", ".txt.gz"}},  // html/_sources/*.rst.txt included
      {"dict-gcide", "", {".dict.dz"}},
      {"python3.11-doc", "", {".txt"}},
      {"perl-doc", "", {".pod", ".pod.gz"}},
      {"postgresql-doc-15", "", {".html"}},
      {"debian-reference-en", "", {".html"}},
      {"git-doc", "", {".txt"}},
      {"fortunes", "usr/share/games/fortunes", {""}},  // the cookie files, which have no extension
  };
  return sources;
}

std::vector<Package> fetch_packages(const std::vector<std::string>& names, const std::string& work_dir,
                                    const ProgressReport& progress) {
  // Absolute, since the commands run inside the downloads folder.
  const std::string work = fs::absolute(work_dir).lexically_normal().string();
  const std::string debs = work + "/debs";
  fs::create_directories(debs);
  ProgressCounter counter(progress, "download and unpack", names.size());
  std::vector<Package> packages;
  for (const auto& name : names) {
    Package package{name, "", find_deb(debs, name), work + "/root/" + name};
    if (package.deb.empty()) {
      checked_output({"apt-get", "download", name}, debs);
      package.deb = find_deb(debs, name);
      require(!package.deb.empty(), "apt-get download " + name + " left no " + name + "_*.deb in " + debs);
    }
    package.version = checked_output({"dpkg-deb", "-f", package.deb, "Version"}, debs);
    while (!package.version.empty() && std::isspace(static_cast<unsigned char>(package.version.back())))
      package.version.pop_back();
    fs::remove_all(package.root);
    fs::create_directories(package.root);
    checked_output({"dpkg", "-x", package.deb, package.root}, debs);
    packages.push_back(std::move(package));
    counter.advance();
  }
  return packages;
}

std::vector<CorpusDocument> extract_documents(const std::vector<CorpusSource>& sources,
                                              const std::vector<Package>& packages, unsigned threads,
                                              const ProgressReport& progress) {
  struct SourceFile {
    const std::string* package;
    std::string path;
  };
  std::vector<SourceFile> files;
  for (const auto& source : sources) {
    auto package =
        std::find_if(packages.begin(), packages.end(), [&](const Package& p) { return p.name == source.package; });
    if (package == packages.end()) throw std::logic_error("package " + source.package + " was not fetched");
    fs::path folder = fs::path(package->root) / source.folder;
    require(fs::is_directory(folder), folder.string() + ": not in package " + source.package);
    std::vector<std::string> paths;
    for (const auto& entry : fs::recursive_directory_iterator(folder))
      if (!entry.is_symlink() && entry.is_regular_file() &&
          name_matches(entry.path().filename().string(), source.suffixes))
        paths.push_back(entry.path().string());
    std::sort(paths.begin(), paths.end());
    for (auto& path : paths) files.push_back({&source.package, std::move(path)});
  }

  std::vector<std::vector<std::string>> documents_of_file(files.size());
  ProgressCounter counter(progress, "extract text", files.size());
  parallel_for(
      files.size(),
      [&](size_t i) {
        documents_of_file[i] = extract_file(files[i].path);
        counter.advance();
      },
      threads);

  std::vector<CorpusDocument> documents;
  for (size_t i = 0; i < files.size(); ++i)
    for (auto& text : documents_of_file[i]) documents.push_back({*files[i].package, std::move(text)});
  return documents;
}

std::vector<size_t> python_shuffle_order(size_t n, uint64_t seed) {
  require(n <= UINT32_MAX, "cannot shuffle " + std::to_string(n) + " items");
  PythonSeedSequence seed_sequence{{static_cast<uint32_t>(seed)}};
  if (seed >> 32) seed_sequence.key.push_back(static_cast<uint32_t>(seed >> 32));
  std::mt19937 rng(seed_sequence);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  for (size_t i = n; i-- > 1;) std::swap(order[i], order[python_randbelow(rng, static_cast<uint32_t>(i + 1))]);
  return order;
}

void order_documents(std::vector<CorpusDocument>& documents, uint64_t seed) {
  std::sort(documents.begin(), documents.end(), [](const CorpusDocument& a, const CorpusDocument& b) {
    return std::tie(a.text, a.source) < std::tie(b.text, b.source);
  });
  std::vector<CorpusDocument> shuffled;
  shuffled.reserve(documents.size());
  for (size_t i : python_shuffle_order(documents.size(), seed)) shuffled.push_back(std::move(documents[i]));
  documents = std::move(shuffled);
}

std::string tokenizer_file_name(int vocab_size) { return "corpus_" + std::to_string(vocab_size) + "_bpe.model"; }

std::string train_tokenizer(std::span<const CorpusDocument> documents, int vocab_size) {
  require(vocab_size >= 260 && vocab_size <= 65536,
          "vocab size " + std::to_string(vocab_size) +
              " is outside 260..65536 (byte fallback needs 256 pieces; shards hold uint16)");
  DocumentIterator sentences(documents);
  std::string model;
  auto settings = sentencepiece_settings(vocab_size);
  std::unordered_map<std::string, std::string> arguments(settings.begin(), settings.end());
  arguments["minloglevel"] = "1";  // warnings and errors only
  auto status = sentencepiece::SentencePieceTrainer::Train(arguments, &sentences, &model);
  require(status.ok(), "SentencePiece training failed: " + status.ToString());
  return model;
}

namespace {

bool is_corpus_file(const std::string& name) {
  return name == "manifest.json" || name.ends_with(".model") ||
         (name.ends_with(".bin") &&
          (name.find("_train_") != std::string::npos || name.find("_val_") != std::string::npos));
}

std::vector<std::string> corpus_files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_corpus_file(entry.path().filename().string()))
      names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

void require_corpus_target(const std::string& out_dir, bool overwrite) {
  std::error_code error;
  fs::create_directories(out_dir, error);
  require(fs::is_directory(out_dir), out_dir + ": cannot create the folder" + (error ? ": " + error.message() : ""));
  if (overwrite) return;
  auto existing = corpus_files_in(out_dir);
  require(existing.empty(), out_dir + ": already holds a corpus (" + (existing.empty() ? "" : existing[0]) +
                                "); pass --force to replace it");
}

void finish_corpus(const std::string& out_dir, const nlohmann::ordered_json& manifest, std::vector<std::string> kept,
                   bool overwrite) {
  std::string text = manifest.dump(2) + "\n";
  write_file_atomic(out_dir + "/manifest.json", {reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                    overwrite);
  if (!overwrite) return;
  kept.push_back("manifest.json");
  for (const auto& name : corpus_files_in(out_dir))
    if (std::find(kept.begin(), kept.end(), name) == kept.end()) fs::remove(fs::path(out_dir) / name);
}

nlohmann::ordered_json tokenizer_manifest_entry(const std::string& path, int vocab_size) {
  auto map = MappedFile::open(path);
  return {{"file", fs::path(path).filename().string()},
          {"bytes", map->bytes().size()},
          {"crc32", hex8(crc32_of(map->bytes()))},
          {"vocab_size", vocab_size}};
}

nlohmann::ordered_json shard_manifest_entry(const std::string& path, size_t tokens) {
  auto map = MappedFile::open(path);
  return {{"file", fs::path(path).filename().string()}, {"tokens", tokens}, {"crc32", hex8(crc32_of(map->bytes()))}};
}

nlohmann::ordered_json write_corpus(std::span<const CorpusDocument> documents, const std::vector<Package>& packages,
                                    const CorpusSettings& settings, const std::string& out_dir, bool overwrite,
                                    const ProgressReport& progress) {
  require(settings.val_documents < documents.size(), std::to_string(documents.size()) +
                                                         " documents leave none for train after " +
                                                         std::to_string(settings.val_documents) + " val documents");
  require(settings.shard_tokens > 0, "shards must hold at least one token");
  require_corpus_target(out_dir, overwrite);

  std::string model_path = out_dir + "/" + tokenizer_file_name(settings.vocab_size);
  {
    ProgressCounter counter(progress, "train tokenizer", 1);
    std::string model =
        train_tokenizer(documents.first(std::min(settings.tokenizer_documents, documents.size())), settings.vocab_size);
    write_file_atomic(model_path, {reinterpret_cast<const uint8_t*>(model.data()), model.size()}, overwrite);
    counter.advance();
  }
  Tokenizer tokenizer = Tokenizer::load(model_path);

  constexpr uint16_t kBos = 1;
  std::vector<std::vector<uint16_t>> tokens_of(documents.size());
  {
    ProgressCounter counter(progress, "tokenize", documents.size());
    parallel_for(
        documents.size(),
        [&](size_t i) {
          std::vector<int> ids = tokenizer.encode(documents[i].text);
          tokens_of[i].reserve(ids.size() + 1);
          tokens_of[i].push_back(kBos);
          for (int id : ids) tokens_of[i].push_back(static_cast<uint16_t>(id));  // id < vocab size <= 65536
          counter.advance();
        },
        settings.threads);
  }

  struct Split {
    std::string name;
    size_t first, last;  // documents [first, last)
    std::vector<uint16_t> tokens;
    Counts counts;
  };
  std::vector<Split> splits = {{"val", 0, settings.val_documents, {}, {}},
                               {"train", settings.val_documents, documents.size(), {}, {}}};
  std::map<std::string, std::map<std::string, Counts>> source_counts;  // source -> split -> counts
  for (const auto& d : documents)
    for (const auto& split : splits) source_counts[d.source][split.name];
  size_t shard_count = 0;
  for (auto& split : splits) {
    for (size_t i = split.first; i < split.last; ++i) {
      for (Counts* c : {&split.counts, &source_counts[documents[i].source][split.name]}) {
        c->documents += 1;
        c->bytes += documents[i].text.size();
        c->tokens += tokens_of[i].size();
      }
      split.tokens.insert(split.tokens.end(), tokens_of[i].begin(), tokens_of[i].end());
      std::vector<uint16_t>().swap(tokens_of[i]);
    }
    shard_count += (split.tokens.size() + settings.shard_tokens - 1) / settings.shard_tokens;
  }

  nlohmann::ordered_json manifest;
  manifest["format"] = "pgolf corpus 1";
  manifest["made_by"] = "pgolf data build";
  manifest["settings"] = {{"vocab_size", settings.vocab_size},
                          {"val_documents", settings.val_documents},
                          {"tokenizer_documents", settings.tokenizer_documents},
                          {"seed", settings.seed},
                          {"order", kShuffleDescription},
                          {"shard_tokens", settings.shard_tokens},
                          {"chunk_chars", kChunkChars},
                          {"max_document_chars", kMaxDocumentChars},
                          {"min_document_chars", kMinDocumentChars},
                          {"bos_id", kBos},
                          {"sentencepiece", sentencepiece_settings(settings.vocab_size)}};
  manifest["packages"] = nlohmann::ordered_json::array();
  for (const auto& p : packages)
    manifest["packages"].push_back(
        {{"name", p.name}, {"version", p.version}, {"deb", fs::path(p.deb).filename().string()}});
  manifest["tokenizer"] = tokenizer_manifest_entry(model_path, tokenizer.vocab_size());

  std::vector<std::string> written = {"manifest.json", tokenizer_file_name(settings.vocab_size)};
  ProgressCounter counter(progress, "write shards", shard_count);
  for (const auto& split : splits) {
    nlohmann::ordered_json entry = split.counts.json();
    entry["shards"] = nlohmann::ordered_json::array();
    std::span<const uint16_t> tokens(split.tokens);
    for (size_t start = 0, index = 0; start < tokens.size(); start += settings.shard_tokens, ++index) {
      auto shard = tokens.subspan(start, std::min(settings.shard_tokens, tokens.size() - start));
      std::string path = out_dir + "/" + shard_name(split.name, index);
      write_shard(path, shard, overwrite);
      entry["shards"].push_back(shard_manifest_entry(path, shard.size()));
      written.push_back(shard_name(split.name, index));
      counter.advance();
    }
    manifest["splits"][split.name] = entry;
  }
  for (const auto& [source, by_split] : source_counts)
    for (const auto& split : splits) manifest["sources"][source][split.name] = by_split.at(split.name).json();

  finish_corpus(out_dir, manifest, written, overwrite);
  return manifest;
}

}  // namespace pgolf

// The corpus builder: English text from Debian documentation packages, ordered
// deterministically, a SentencePiece BPE trained on it with Parameter Golf's settings, and
// the documents tokenized into Parameter Golf shards (shared/data/sp1024/README.md).
//
//   fetch_packages -> extract_documents -> order_documents -> write_corpus
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "core/progress.h"

namespace pgolf {

// Which files of a package become documents; each file's name picks its text rule
// (rule_for_file in corpus_text.h).
struct CorpusSource {
  std::string package;                // Debian package name
  std::string folder;                 // only files under this folder of the package ("" = anywhere)
  std::vector<std::string> suffixes;  // only files whose names end so ("" = names without a dot)
};

// The sources of shared/data/sp1024, in the order of its README's table.
const std::vector<CorpusSource>& default_corpus_sources();

// A downloaded and unpacked package.
struct Package {
  std::string name;
  std::string version;  // as dpkg-deb reports it
  std::string deb;      // the .deb file
  std::string root;     // where dpkg -x unpacked it
};

// Downloads each package with `apt-get download` into work_dir/debs (a .deb already there is
// reused) and unpacks it with `dpkg -x` into a fresh work_dir/root/NAME.
// Throws InputError (with apt's own message) when a package cannot be had.
std::vector<Package> fetch_packages(const std::vector<std::string>& names, const std::string& work_dir,
                                    const ProgressReport& progress = {});

struct CorpusDocument {
  std::string source;  // the package it came from
  std::string text;    // UTF-8
};

// The documents of every source's files (gzip'd files, .gz or dictzip .dz, are decompressed;
// symbolic links are skipped), on `threads` threads; the order is the sources' and then the
// files' (by path), but order_documents decides the corpus order.
std::vector<CorpusDocument> extract_documents(const std::vector<CorpusSource>& sources,
                                              const std::vector<Package>& packages, unsigned threads,
                                              const ProgressReport& progress = {});

// The permutation Python's random.Random(seed).shuffle applies to a list of n items
// (MT19937 seeded by init_by_array over the seed's 32-bit words, Fisher-Yates from the back,
// each index drawn by rejection from the fewest random bits): the result is the shuffled
// list(range(n)), so a reader can reproduce the order in two lines of Python.
std::vector<size_t> python_shuffle_order(size_t n, uint64_t seed);

// Sorts the documents by text (bytewise, ties by source), then shuffles them with
// python_shuffle_order(seed).
void order_documents(std::vector<CorpusDocument>& documents, uint64_t seed);

struct CorpusSettings {
  int vocab_size = 1024;
  size_t val_documents = 1000;        // the first ones after ordering are val, the rest train
  size_t tokenizer_documents = 8000;  // the tokenizer trains on the first ones
  uint64_t seed = 1337;
  size_t shard_tokens = 20'000'000;  // per shard
  unsigned threads = 2;              // for tokenizing
};

// The tokenizer file name for a vocab size: corpus_1024_bpe.model.
std::string tokenizer_file_name(int vocab_size);

// SentencePiece BPE trained on the documents with Parameter Golf's settings (byte fallback,
// split digits, nmt_nfkc, no dummy prefix, pad/bos/eos/unk = 0/1/2/3, hard_vocab_limit false)
// and character_coverage 0.995; one document is one training sentence. Returns the model
// bytes; the same documents give the same bytes.
std::string train_tokenizer(std::span<const CorpusDocument> documents, int vocab_size);

// Trains the tokenizer on the first settings.tokenizer_documents documents, writes it, tokenizes
// every document (BOS = 1 first, no EOS) into corpus_val_%06d.bin / corpus_train_%06d.bin
// shards and writes manifest.json (counts per split and source, the tokenizer's CRC-32, the
// packages' versions, the settings). Every file is written atomically; an existing corpus in
// out_dir is refused unless overwrite, which also removes its shards that this one does not
// replace. Returns the manifest.
nlohmann::ordered_json write_corpus(std::span<const CorpusDocument> documents, const std::vector<Package>& packages,
                                    const CorpusSettings& settings, const std::string& out_dir, bool overwrite,
                                    const ProgressReport& progress = {});

// Shared by build and import. A corpus folder's files are manifest.json, *.model and the
// *_train_*.bin / *_val_*.bin shards.
// Creates out_dir; throws InputError when it holds corpus files and overwrite is not set.
void require_corpus_target(const std::string& out_dir, bool overwrite);
// Writes out_dir/manifest.json (atomically) last, then, when overwriting, removes the corpus files
// of out_dir that are not among `kept` (file names) or the manifest.
void finish_corpus(const std::string& out_dir, const nlohmann::ordered_json& manifest, std::vector<std::string> kept,
                   bool overwrite);
// The manifest entry of a tokenizer file: name, bytes, CRC-32 and vocab size.
nlohmann::ordered_json tokenizer_manifest_entry(const std::string& path, int vocab_size);
// The manifest entry of a shard file: name, tokens and the CRC-32 of the whole file.
nlohmann::ordered_json shard_manifest_entry(const std::string& path, size_t tokens);

}  // namespace pgolf

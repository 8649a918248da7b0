// Importing an existing Parameter Golf data folder (shards and their SentencePiece tokenizer)
// into a pgolf corpus folder, checking every shard on the way.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "data/corpus.h"

namespace pgolf {

// Reads in_dir's one *.model tokenizer and its *_val_*/*_train_* shards (.bin, or .bin.xz which
// is decompressed), checks each shard (TokenShard::open) and that every token id is below the
// tokenizer's vocab size, and copies them into out_dir (shards named without .xz) with a
// manifest.json, which comes last: a failed import leaves none. Throws InputError naming the
// offending file. An existing corpus in out_dir is refused unless overwrite, which also removes
// its files that the import does not replace. Returns the manifest.
nlohmann::ordered_json import_corpus(const std::string& in_dir, const std::string& out_dir, bool overwrite,
                                     const ProgressReport& progress = {});

}  // namespace pgolf

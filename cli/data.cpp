// pgolf data: build the corpus of shared/data/sp1024 from Debian packages, import existing
// Parameter Golf shards, or show how files become documents.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/spec.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "data/corpus.h"
#include "data/corpus_import.h"
#include "data/corpus_text.h"

namespace pgolf::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Shows each stage of a long run on stderr: a bar on a terminal, otherwise a plain line at
// every quarter; either way one line when the stage ends.
class StageReporter {
 public:
  void operator()(const std::string& stage, size_t done, size_t total) {
    if (stage != stage_) {
      bar_.reset();
      stage_ = stage;
      shown_ = 0;
      quarters_shown_ = -1;
      start_ = Clock::now();
      if (terminal_) bar_ = std::make_unique<Progress>(stage, total);
    }
    if (bar_) {
      bar_->advance(done - shown_);
      shown_ = done;
    } else if (int quarters = total ? static_cast<int>(4 * done / total) : 4;
               quarters != quarters_shown_ && done < total) {
      quarters_shown_ = quarters;
      std::fprintf(stderr, "pgolf data: %s %s/%s\n", stage.c_str(), with_commas(done).c_str(),
                   with_commas(total).c_str());
    }
    if (done == total) {
      bar_.reset();
      std::fprintf(stderr, "pgolf data: %s: %s done in %.1f s\n", stage.c_str(), with_commas(total).c_str(),
                   seconds_since(start_));
    }
  }

 private:
  bool terminal_ = ::isatty(STDERR_FILENO) == 1;
  std::unique_ptr<Progress> bar_;
  std::string stage_;
  size_t shown_ = 0;
  int quarters_shown_ = -1;
  Clock::time_point start_;
};

void print_counts(const std::string& label, const nlohmann::ordered_json& counts) {
  std::printf("  %-22s %8s docs %13s bytes %12s tokens\n", label.c_str(),
              with_commas(counts["documents"].get<size_t>()).c_str(),
              with_commas(counts["bytes"].get<size_t>()).c_str(), with_commas(counts["tokens"].get<size_t>()).c_str());
}

int build_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf data build",
      "Builds the corpus of shared/data/sp1024 from Debian documentation packages (apt-get download, dpkg -x):\n"
      "text extracted, documents sorted and shuffled, a SentencePiece BPE trained on the first 8,000, every\n"
      "document tokenized into Parameter Golf shards, and manifest.json.\n"
      "  pgolf data build --out /tmp/pgolf-corpus --work /tmp/pgolf-corpus-work");
  const CorpusSettings defaults;  // each flag's default is the struct's
  options.add_options()("o,out,output", "output folder (or --output)", cxxopts::value<std::string>())(
      "vocab", "tokenizer vocab size", cxxopts::value<int>()->default_value(number_text(defaults.vocab_size)))(
      "val-docs", "documents in the val split (the first after shuffling)",
      cxxopts::value<size_t>()->default_value(number_text(defaults.val_documents)))("seed", "shuffle seed",
                                                       cxxopts::value<uint64_t>()->default_value(number_text(defaults.seed)))(
      "work",
      "keep downloads and unpacked packages here, reused by later builds (default: a folder in --out, "
      "removed at the end)",
      cxxopts::value<std::string>())("threads", "threads for extracting and tokenizing (default: every core)",
                                     cxxopts::value<unsigned>())(
      "force,overwrite", "replace a corpus already in --out (or --overwrite)");
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("out") > 0, "--out DIR is required (pgolf data build --help)");
  const std::string out = args["out"].as<std::string>();
  const bool force = args.count("force") > 0;
  const bool keep_work = args.count("work") > 0;
  const std::string work = keep_work ? args["work"].as<std::string>() : out + "/.work";
  CorpusSettings settings;
  settings.vocab_size = args["vocab"].as<int>();
  settings.val_documents = args["val-docs"].as<size_t>();
  settings.seed = args["seed"].as<uint64_t>();
  settings.threads = args.count("threads") ? args["threads"].as<unsigned>() : default_threads();
  require(settings.threads > 0, "--threads must be positive");

  const auto start = Clock::now();
  require_corpus_target(out, force);  // before the downloads, not after
  StageReporter reporter;
  const ProgressReport progress = std::ref(reporter);
  std::vector<std::string> names;
  for (const auto& source : default_corpus_sources()) names.push_back(source.package);
  auto packages = fetch_packages(names, work, progress);
  auto documents = extract_documents(default_corpus_sources(), packages, settings.threads, progress);
  order_documents(documents, settings.seed);
  auto manifest = write_corpus(documents, packages, settings, out, force, progress);
  if (!keep_work) std::filesystem::remove_all(work);

  std::printf("corpus %s: %s documents, tokenizer %s (crc32 %s)\n", out.c_str(), with_commas(documents.size()).c_str(),
              manifest["tokenizer"]["file"].get<std::string>().c_str(),
              manifest["tokenizer"]["crc32"].get<std::string>().c_str());
  for (const auto& [source, splits] : manifest["sources"].items()) {
    nlohmann::ordered_json total = {{"documents", 0}, {"bytes", 0}, {"tokens", 0}};
    for (const auto& [split, counts] : splits.items())
      for (const auto& [key, value] : counts.items()) total[key] = total[key].get<size_t>() + value.get<size_t>();
    print_counts(source, total);
  }
  for (const auto& [split, counts] : manifest["splits"].items())
    print_counts(split + " (" + std::to_string(counts["shards"].size()) + " shards)", counts);
  std::printf("built in %.0f s\n", seconds_since(start));
  return 0;
}

int import_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf data import",
      "Imports Parameter Golf shards (*_val_*.bin, *_train_*.bin, or .bin.xz) and their tokenizer (*.model):\n"
      "checks every shard and token id, copies or decompresses them into --out with a manifest.json.\n"
      "  pgolf data import shared/data/sp1024 --out /tmp/sp1024");
  options.positional_help("DIR").show_positional_help();
  options.add_options()("o,out,output", "output folder (or --output)", cxxopts::value<std::string>())(
      "force,overwrite", "replace a corpus already in --out (or --overwrite)")(
      "dir", "folder to import", cxxopts::value<std::string>());
  options.parse_positional({"dir"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("dir") > 0, "no folder to import given (pgolf data import --help)");
  require(args.count("out") > 0, "--out DIR is required (pgolf data import --help)");
  const std::string out = args["out"].as<std::string>();

  StageReporter reporter;
  auto manifest =
      import_corpus(args["dir"].as<std::string>(), out, args.count("force") > 0,
                    [&](const std::string& stage, size_t done, size_t total) { reporter(stage, done, total); });
  std::printf("corpus %s: tokenizer %s (vocab %d, crc32 %s)\n", out.c_str(),
              manifest["tokenizer"]["file"].get<std::string>().c_str(), manifest["tokenizer"]["vocab_size"].get<int>(),
              manifest["tokenizer"]["crc32"].get<std::string>().c_str());
  for (const auto& [split, entry] : manifest["splits"].items()) {
    for (const auto& shard : entry["shards"])
      std::printf("  %-28s %12s tokens  crc32 %s\n", shard["file"].get<std::string>().c_str(),
                  with_commas(shard["tokens"].get<size_t>()).c_str(), shard["crc32"].get<std::string>().c_str());
    std::printf("  %-28s %12s tokens\n", (split + " total").c_str(),
                with_commas(entry["tokens"].get<size_t>()).c_str());
  }
  return 0;
}

int extract_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf data extract",
      "Shows how files become corpus documents (the rule follows the name: .html, .dict[.dz], no dot = fortune\n"
      "cookies, else plain text; .gz is decompressed): writes one JSON line {\"file\", \"text\"} per document.\n"
      "  pgolf data extract samples/corpus/raw/* --out documents.jsonl");
  options.positional_help("FILE...").show_positional_help();
  options.add_options()("o,out,output", "output .jsonl file (or --output)", cxxopts::value<std::string>())(
      "force,overwrite", "replace --out if it exists (or --overwrite)");
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  // The files are the unmatched arguments: a vector option would split names at commas.
  const std::vector<std::string>& files = args.unmatched();
  require(!files.empty(), "no files given (pgolf data extract --help)");
  require(args.count("out") > 0, "--out FILE is required (pgolf data extract --help)");

  std::string lines;
  size_t documents = 0, bytes = 0;
  for (const auto& path : files) {
    for (const auto& text : extract_file(path)) {
      lines += nlohmann::ordered_json{{"file", path}, {"text", text}}.dump() + "\n";
      ++documents;
      bytes += text.size();
    }
  }
  const std::string out = args["out"].as<std::string>();
  write_file_atomic(out, {reinterpret_cast<const uint8_t*>(lines.data()), lines.size()}, args.count("force") > 0);
  std::printf("%s: %s documents, %s bytes of text from %zu files\n", out.c_str(), with_commas(documents).c_str(),
              with_commas(bytes).c_str(), files.size());
  return 0;
}

}  // namespace

int data_main(int argc, char** argv) {
  constexpr std::string_view kUsage =
      "usage: pgolf data build|import|extract [options]   (pgolf data COMMAND --help)\n"
      "  build    build the sp1024 corpus from Debian packages\n"
      "  import   check and copy existing Parameter Golf shards and tokenizer\n"
      "  extract  show the documents the corpus rules make of some files\n";
  std::string_view command = argc > 1 ? argv[1] : "";
  if (command == "build") return build_main(argc - 1, argv + 1);
  if (command == "import") return import_main(argc - 1, argv + 1);
  if (command == "extract") return extract_main(argc - 1, argv + 1);
  if (command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << kUsage;
  throw InputError(command.empty() ? "no data command given" : "unknown data command '" + std::string(command) + "'");
}

}  // namespace pgolf::cli

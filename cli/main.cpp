// pgolf: one binary, one subcommand per file.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "cli/command.h"
#include "cli/options.h"
#include "core/error.h"

namespace {

struct Subcommand {
  std::string_view name;
  int (*entry)(int, char**);
  std::string_view summary;
};

constexpr Subcommand kSubcommands[] = {
    {"compress", pgolf::cli::compress_main, "checkpoint (safetensors) -> one .pgz artifact, with per-tensor error and bytes"},
    {"decompress", pgolf::cli::decompress_main, ".pgz artifact -> safetensors, exactly the codec's dequantized values"},
    {"inspect", pgolf::cli::inspect_main, "list the tensors, codecs, bytes and checksums of safetensors files or artifacts"},
    {"eval", pgolf::cli::eval_main, "val_loss and val_bpb of a checkpoint or artifact on Parameter Golf shards"},
    {"data", pgolf::cli::data_main, "build or import a corpus in Parameter Golf's shard format"},
    {"train", pgolf::cli::train_main, "train the baseline model (Muon + Adam) on Parameter Golf shards; bf16 checkpoint + resumable state"},
    {"bench", pgolf::cli::bench_main, "rate-distortion sweep: bytes, error, time and val_bpb per codec; table, CSV, JSON, SVG plots"},
    {"sensitivity", pgolf::cli::sensitivity_main, "per-tensor loss increase per unit of squared error, for compress --auto --sensitivity"},
    {"export-decoder", pgolf::cli::export_decoder_main, "write the Python decoder (numpy) of compress --profile python artifacts"},
    {"codecs", pgolf::cli::codecs_main, "the tensor codecs and their examples; given a checkpoint, each one's bits and error on it"},
    {"calibrate", pgolf::cli::calibrate_main, "input Hessians X^T X / n of the quantized matrices on train or self-generated tokens, for compress --calibration"},
};

void usage(std::FILE* out) {
  std::fprintf(out, "usage: pgolf COMMAND [options]   (pgolf COMMAND --help for its options)\n\ncommands:\n");
  for (const auto& s : kSubcommands)
    std::fprintf(out, "  %-14s %.*s\n", std::string(s.name).c_str(), static_cast<int>(s.summary.size()), s.summary.data());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--version" || name == "version") {
    std::printf("pgolf %s (%s)\n", PGOLF_VERSION, PGOLF_BUILD);
    return 0;
  }
  // "pgolf help CMD" is "pgolf CMD --help".
  char help_flag[] = "--help";
  char* help_argv[] = {argv[0], argc > 2 ? argv[2] : nullptr, help_flag, nullptr};
  if (name == "help" && argc > 2) {
    argc = 3;
    argv = help_argv;
    name = argv[1];
  }
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  for (const auto& s : kSubcommands) {
    if (s.name != name) continue;
    try {
      return s.entry(argc - 1, argv + 1);
    } catch (const pgolf::InputError& e) {
      std::fprintf(stderr, "pgolf %s: error: %s\n", argv[1], e.what());
      return 2;
    } catch (const std::bad_alloc&) {  // a declared size this machine cannot hold
      std::fprintf(stderr, "pgolf %s: error: out of memory: the input declares more than this machine can hold\n", argv[1]);
      return 2;
    } catch (const cxxopts::exceptions::exception& e) {
      std::fprintf(stderr, "pgolf %s: error: %s\n", argv[1], e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pgolf %s: internal error: %s\n", argv[1], e.what());
      return 1;
    }
  }
  std::vector<std::string> names;
  for (const auto& s : kSubcommands) names.emplace_back(s.name);
  const std::string near = pgolf::cli::nearest_name(std::string(name), names);
  std::fprintf(stderr, "pgolf: error: unknown command '%s'%s; try pgolf --help\n", argv[1],
               near.empty() ? "" : ("; did you mean " + near + "?").c_str());
  return 2;
}

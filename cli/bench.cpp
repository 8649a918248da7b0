// pgolf bench: the rate-distortion sweep. A checkpoint compressed under many codec settings and
// byte codecs; a table on stdout and, in --out, bench.md, bench.csv, bench_tensors.csv,
// bench.json and SVG plots.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "artifact/load.h"
#include "checkpoint/safetensors.h"
#include "cli/bench_report.h"
#include "cli/command.h"
#include "cli/evaluator.h"
#include "cli/format.h"
#include "cli/list_flag.h"
#include "cli/options.h"
#include "cli/val_data.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "plan/sweep.h"
#include "quant/calibration.h"
#include "trainer/eval.h"

namespace pgolf::cli {


int bench_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf bench",
      "Rate-distortion sweep: compress a checkpoint under each codec and byte codec; bytes, entropy, error, time, val_bpb.\n"
      "  pgolf bench samples/base9 --out bench/\n"
      "  pgolf bench samples/base9 --codecs 'int5;int6;kmeans:k=64' --compressors zstd:22 --tokens 8192 --data samples/sp1024");
  options.positional_help("CHECKPOINT...").show_positional_help();
  options.add_options()
      ("codecs", "codec specs for large 2-D tensors, ';'-separated or repeated (default: the standard sweep; see below)",
       cxxopts::value<std::vector<std::string>>())
      ("compressors", "byte codecs, ';'-separated or repeated (default: zstd:22;zlib:9)", cxxopts::value<std::vector<std::string>>())
      ("tokens,eval-tokens,val-tokens", "also val_bpb on the first ceil(N / 1024) sequences of the val split (slow on a CPU: try "
                             "8192; --eval-tokens and --val-tokens are other spellings)",
       cxxopts::value<int64_t>())
      ("calibration", "input Hessians (pgolf calibrate): adds the GPTQ points to the default sweep and the output-space "
                      "error tr(dW H dW^T) to every point", cxxopts::value<std::string>())
      ("data", "folder of *_val_*.bin shards and the *.model tokenizer (for --tokens)", cxxopts::value<std::string>())
      ("device", "where GPTQ and --tokens run: auto, cpu or cuda (auto: cuda when a GPU is present)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("tokenizer", "SentencePiece .model (default: the one in --data)", cxxopts::value<std::string>())
      ("o,out,output", "folder for bench.md, bench.csv, bench_tensors.csv, bench.json and the SVG plots "
                       "(or --output)",
       cxxopts::value<std::string>()->default_value("pgolf-bench"))
      ("json", "print bench.json instead of the table")
      ("force,overwrite", "write into an --out folder that is not empty (bench's own files there are replaced, "
                          "the old plots removed; or --overwrite)")
      ("threads", "threads (default: all cores)", cxxopts::value<unsigned>()->default_value("0"))
      ("inputs", "checkpoint files, an index.json, a folder or one shard of a set", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"inputs"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args, {},
                     "default sweep: int4..int8 under clip absmax, quantile:0.9999, std:K and mse; kmeans K=16/64/256, "
                     "Lloyd and ECSQ; prune:0.01/0.03/0.05+int6; tok_emb lowrank:rank=16..256+int8 (int6 elsewhere); "
                     "ecsq:totalrelmse=4e-3..4e-4; with --calibration, gptq+ over those and over int5..int8 (clip std). "
                     "Codecs the build lacks are skipped with a warning.\n"))
    return 0;
  require(args.count("inputs") > 0, "no input checkpoint given (pgolf bench --help)");
  const auto start = std::chrono::steady_clock::now();
  const auto checkpoint = Checkpoint::open(args["inputs"].as<std::vector<std::string>>());
  const bool as_json = args.count("json") > 0;
  const std::string out_dir = args["out"].as<std::string>();
  // The output folder checked before the sweep: a fresh one, or --force.
  const bool force = args.count("force") > 0;
  std::error_code ec;
  require(!std::filesystem::exists(out_dir, ec) || std::filesystem::is_directory(out_dir, ec),
          out_dir + ": --out is a file, not a folder");
  require(force || !std::filesystem::exists(out_dir, ec) || std::filesystem::is_empty(out_dir, ec),
          out_dir + ": not empty; pass --force to write bench's files into it");

  std::optional<Calibration> calibration;
  if (args.count("calibration")) calibration.emplace(Calibration::load(args["calibration"].as<std::string>()));

  std::vector<SweepPoint> points;
  if (args.count("codecs")) {
    for (const auto& spec : list_flag_values(args, "codecs")) points.push_back(sweep_point(spec));
  } else {
    std::vector<std::string> skipped;
    points = default_sweep(skipped, calibration.has_value());
    for (const auto& line : skipped) std::fprintf(stderr, "warning: skipping %s\n", line.c_str());
  }
  require(!points.empty(), "no codec to sweep");

  SweepOptions sweep;
  if (args.count("compressors")) sweep.compressors = list_flag_values(args, "compressors");
  else sweep.compressors = {"zstd:22", "zlib:9"};
  sweep.threads = args["threads"].as<unsigned>();
  sweep.calibration = calibration ? &*calibration : nullptr;
  // GPTQ (with calibration) and --tokens run on the device; otherwise no GPU is woken (a flag
  // given is still checked).
  const bool uses_device = calibration || args.count("tokens") || args.count("device");
  const std::string device = uses_device ? choose_device(args["device"].as<std::string>()) : "cpu";
  sweep.gptq = gptq_engine_on(device);
  // Evaluation: the val tokens and tokenizer are read once; each point's decoded artifact becomes a model.
  // At the sequence length, rope base and softcap the checkpoint records (every point's artifact carries them).
  const RecordedSettings recorded = recorded_settings(checkpoint.metadata());
  EvalOptions eval;
  eval.seq_len = recorded.seq_len.value_or(eval.seq_len);
  std::vector<uint16_t> tokens;
  std::optional<Tokenizer> tokenizer;
  if (args.count("tokens")) {
    const int64_t n = args["tokens"].as<int64_t>();
    require(n > 0, "--tokens must be positive");
    require(args.count("data") > 0, "--tokens needs --data DIR");
    const std::string data = args["data"].as<std::string>();
    tokenizer = Tokenizer::load(args.count("tokenizer") ? args["tokenizer"].as<std::string>() : find_tokenizer(data));
    eval.max_sequences = (n + eval.seq_len - 1) / eval.seq_len;
    eval.threads = static_cast<int>(sweep.threads ? sweep.threads : default_threads());
    tokens = read_val_tokens(find_shards(data, "val"), static_cast<size_t>(eval.max_sequences * eval.seq_len + 1));
    sweep.evaluate = [&](DecodedArtifact&& decoded) {
      const auto tensors = float_tensors_of(std::move(decoded), "bench");
      const Model<float> model = evaluation_model(tensors, recorded, *tokenizer);
      return evaluate_on(device, model, tokens, tokenizer->byte_table(), eval).val_bpb;
    };
  }

  // The checkpoint as it is, for the plot's baseline (bf16 for base9).
  std::optional<double> checkpoint_val_bpb;
  if (sweep.evaluate) {
    const Model<float> model =
        evaluation_model(load_float_tensors(args["inputs"].as<std::vector<std::string>>()), recorded, *tokenizer);
    checkpoint_val_bpb = evaluate_on(device, model, tokens, tokenizer->byte_table(), eval).val_bpb;
  }
  sweep.progress = progress_bars();
  const std::vector<SweepResult> results = run_sweep(checkpoint, points, sweep);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // The table first: a run whose files cannot be written still shows what it measured.
  const std::string table = bench_markdown(results);
  if (!as_json) std::printf("%s\n", table.c_str());
  std::fflush(stdout);
  std::filesystem::create_directories(out_dir);
  for (const auto& entry : std::filesystem::directory_iterator(out_dir))  // the last run's plots
    if (entry.path().extension() == ".svg" && entry.path().filename().string().starts_with("rd_"))
      std::filesystem::remove(entry.path());
  auto path = [&](const std::string& name) { return (std::filesystem::path(out_dir) / name).string(); };
  std::string md = "# pgolf bench\n\n" + checkpoint.files().front() + (checkpoint.files().size() > 1 ? " (and more)" : "") +
                   ": " + with_commas(results.front().parameters) + " parameters; " + std::to_string(points.size()) +
                   " codecs x " + std::to_string(sweep.compressors.size()) + " byte codecs in " +
                   std::to_string(static_cast<int>(seconds)) + " s. Errors are over the quantized tensors.\n\n" + table +
                   "\n## Relative MSE by tensor class\n\n" + bench_class_markdown(results) + "\n";
  if (checkpoint_val_bpb) {
    char line[96];
    std::snprintf(line, sizeof line, "The checkpoint itself, unquantized: val_bpb %.6f.\n\n", *checkpoint_val_bpb);
    md += line;
  }
  const auto plots = bench_plots(results, checkpoint_val_bpb);
  for (const auto& plot : plots) md += "![" + plot.name + "](" + plot.name + ")\n";
  write_text(path("bench.md"), md);
  write_text(path("bench.csv"), bench_csv(results));
  write_text(path("bench_tensors.csv"), bench_tensors_csv(results));
  const std::string json = bench_json(results).dump(2) + "\n";
  write_text(path("bench.json"), json);
  for (const auto& plot : plots) write_text(path(plot.name), plot.svg);

  if (as_json) {
    std::cout << json;
  } else {
    std::printf("wrote:       %s/{bench.md, bench.csv, bench_tensors.csv, bench.json} and %zu SVG plots\n", out_dir.c_str(),
                plots.size());
    std::printf("time:        %.1f s\n", seconds);
  }
  return 0;
}

}  // namespace pgolf::cli

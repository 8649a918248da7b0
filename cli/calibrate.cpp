// pgolf calibrate: the input Hessian H = XᵀX / n of every matrix the compressor quantizes, from the
// model's forward on the first tokens of a data folder's train split (never val) or on sequences the
// model samples itself; written as safetensors for compress --calibration (trainer/calibration.h
// describes the file). On a CUDA GPU where one is present, else on the CPU reference.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/evaluator.h"
#include "cli/format.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/spec.h"
#include "core/progress.h"

namespace pgolf::cli {

int calibrate_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf calibrate",
      "Input Hessians H = X^T X / n of every quantized matrix, from the model's forward on train tokens or on text\n"
      "it samples itself; for pgolf compress --calibration.\n"
      "  pgolf calibrate samples/base9 --data DIR -o base9.hessian.safetensors\n"
      "  pgolf calibrate samples/base9 --self-generated 64 --temperature 0.8 -o base9.self.safetensors");
  options.positional_help("MODEL...").show_positional_help();
  const SamplingOptions sampling_defaults;  // each sampling flag's default is the struct's
  // clang-format off
  options.add_options()
      ("o,output,out", "Hessians to write (.safetensors) (or --out)", cxxopts::value<std::string>())
      ("data", "folder of *_train_*.bin shards: the first --tokens tokens are read (never the val split)",
       cxxopts::value<std::string>())
      ("tokens", "train tokens to calibrate on, rounded up to whole sequences",
       cxxopts::value<int64_t>()->default_value("524288"))
      ("seq-len", "tokens per sequence (default: the one the checkpoint records it was trained at, else 1024)",
       cxxopts::value<int>())
      ("self-generated", "calibrate on N sequences the model samples itself, from BOS (instead of --data)",
       cxxopts::value<int64_t>())
      ("temperature", "sampling temperature of --self-generated", cxxopts::value<double>()->default_value(number_text(sampling_defaults.temperature)))
      ("seed", "sampling seed of --self-generated", cxxopts::value<uint64_t>()->default_value(number_text(sampling_defaults.seed)))
      ("threads", "CPU worker threads (default: every core)", cxxopts::value<int>())
      ("device", "auto, cpu or cuda (auto: cuda when a GPU is present, else cpu)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("force,overwrite", "replace an existing output (or --overwrite)")
      ("model", "safetensors files/folder (one checkpoint) or a .pgz artifact",
       cxxopts::value<std::vector<std::string>>());
  // clang-format on
  options.parse_positional({"model"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("model") > 0, "no model given (pgolf calibrate --help)");
  require(args.count("output") > 0, "no output given: pass -o H.safetensors");
  const bool self_generated = args.count("self-generated") > 0;
  require(self_generated || args.count("data") > 0, "--data DIR (train shards) or --self-generated N is required");
  require(!self_generated || (args.count("data") == 0 && args.count("tokens") == 0),
          "--self-generated N calibrates on N x --seq-len sampled tokens: it takes neither --data nor --tokens");
  require(self_generated || (args.count("temperature") == 0 && args.count("seed") == 0),
          "--temperature and --seed are for --self-generated");
  const auto model_paths = args["model"].as<std::vector<std::string>>();
  const std::string output = args["output"].as<std::string>();
  const int threads =
      args.count("threads") ? args["threads"].as<int>() : static_cast<int>(std::thread::hardware_concurrency());
  require(threads > 0, "--threads must be positive");
  const bool force = args.count("force") > 0;
  std::vector<std::string> reads = model_paths;
  if (args.count("data")) reads.push_back(args["data"].as<std::string>());
  check_output(output, reads, force);
  const std::string device = choose_device(args["device"].as<std::string>());

  std::map<std::string, std::string> metadata;
  const auto tensors = load_float_tensors(model_paths, &metadata);
  const RecordedSettings recorded = recorded_settings(metadata);
  const Model<float> model = model_of(tensors, recorded);
  const int seq_len = args.count("seq-len") ? args["seq-len"].as<int>() : recorded.seq_len.value_or(1024);
  require(seq_len > 0, "--seq-len must be positive");
  std::printf("model       %s (%s)\n", model_paths[0].c_str(), model.config().describe().c_str());
  std::printf("device      %s\n", describe_device(device, threads).c_str());
  std::fflush(stdout);

  const auto start = std::chrono::steady_clock::now();
  auto seconds_since = [](auto t) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(); };
  std::vector<uint16_t> tokens;
  CalibrationRecord record{"", "", seq_len};
  for (const std::string& path : model_paths) record.model += (record.model.empty() ? "" : " ") + path;
  if (self_generated) {
    SamplingOptions sampling{args["self-generated"].as<int64_t>(), seq_len, args["temperature"].as<double>(),
                             args["seed"].as<uint64_t>()};
    tokens = self_generate_on(device, model, sampling, threads, progress_bars());
    char text[96];
    std::snprintf(text, sizeof text, "self-generated:%lld,temperature=%g,seed=%llu",
                  static_cast<long long>(sampling.sequences), sampling.temperature,
                  static_cast<unsigned long long>(sampling.seed));
    record.source = text;
    std::printf("sampled     %s sequences of %d tokens from BOS, temperature %g, seed %llu (%.2f s)\n",
                with_commas(sampling.sequences).c_str(), seq_len, sampling.temperature,
                static_cast<unsigned long long>(sampling.seed), seconds_since(start));
  } else {
    const std::string data = args["data"].as<std::string>();
    tokens = read_train_windows(data, args["tokens"].as<int64_t>(), seq_len);
    record.source = "train:" + data;
    std::printf("data        %s: the first %s train tokens, %s sequences of %d\n", data.c_str(),
                with_commas(tokens.size()).c_str(), with_commas(tokens.size() / seq_len).c_str(), seq_len);
  }
  std::fflush(stdout);

  const auto forward_start = std::chrono::steady_clock::now();
  const std::vector<WeightHessian> hessians =
      calibrate_to(output, device, model, tokens, record, threads, force, progress_bars());
  for (size_t i = 0; i < hessians.size(); ++i)
    std::printf("[%3zu/%zu] %-32s dim %5lld  trace %.6e\n", i + 1, hessians.size(), hessians[i].name.c_str(),
                static_cast<long long>(hessians[i].dim), hessians[i].trace);
  std::printf("hessians    %zu matrices (%zu distinct inputs) over %s token positions, %.2f s\n", hessians.size(),
              matrix_inputs(model.config()).size(), with_commas(tokens.size()).c_str(), seconds_since(forward_start));
  std::printf("wrote       %s (%s B)\n", output.c_str(), with_commas(std::filesystem::file_size(output)).c_str());
  return 0;
}

}  // namespace pgolf::cli

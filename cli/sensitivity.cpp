// pgolf sensitivity: how much the val loss grows per unit of squared error in each tensor the plan
// would quantize (plan/sensitivity.h measures it; this file reads the flags and the val split and
// prints). `pgolf compress --auto --sensitivity FILE` then minimises the predicted loss increase.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "artifact/load.h"
#include "checkpoint/safetensors.h"
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
#include "plan/plan.h"
#include "plan/sensitivity.h"
#include "quant/calibration.h"
#include "quant/tensor_codec.h"

namespace pgolf::cli {

int sensitivity_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf sensitivity",
      "Per-tensor sensitivity: the val loss increase per unit of squared error, each tensor quantized alone.\n"
      "  pgolf sensitivity samples/base9 --data samples/sp1024 --tokens 65536 -o sens.json\n"
      "  pgolf compress samples/base9 -o b.pgz --auto --budget 10000000 --sensitivity sens.json");
  options.positional_help("CHECKPOINT...").show_positional_help();
  options.add_options()
      ("o,output,out", "JSON file {\"tensor\": weight} to write (or --out)", cxxopts::value<std::string>())
      ("data", "folder of *_val_*.bin shards and the *.model tokenizer", cxxopts::value<std::string>())
      ("tokens,val-tokens", "evaluate on the first ceil(N / 1024) val sequences", cxxopts::value<int64_t>()->default_value("65536"))
      ("codec", "probe codec: its error is what each tensor is measured under (a coarse one gives a loss change "
                "well above the evaluation's rounding)", cxxopts::value<std::string>()->default_value(SensitivityOptions{}.probe_spec))
      ("calibration", "input Hessians (pgolf calibrate): weights per unit of output error tr(dW H dW^T), the error "
                      "compress --auto --calibration minimises (and gptq probe codecs)", cxxopts::value<std::string>())
      ("rule", "REGEX=SPEC, as for compress: which tensors the plan quantizes (only those are probed)",
       cxxopts::value<std::vector<std::string>>())
      ("tokenizer", "SentencePiece .model (default: the one in --data)", cxxopts::value<std::string>())
      ("device", "where the model and GPTQ probes run: auto, cpu or cuda (auto: cuda when a GPU is present)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("threads", "CPU threads (default: all cores)", cxxopts::value<unsigned>()->default_value("0"))
      ("json", "print the measurements as JSON instead of the table")
      ("force,overwrite", "replace an existing output (or --overwrite)")
      ("inputs", "checkpoint files, an index.json, a folder or one shard of a set", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"inputs"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("inputs") > 0, "no input checkpoint given (pgolf sensitivity --help)");
  require(args.count("output") > 0, "-o FILE is required (pgolf sensitivity --help)");
  require(args.count("data") > 0, "--data DIR is required (pgolf sensitivity --help)");
  const std::string output = args["output"].as<std::string>();
  check_output(output, args["inputs"].as<std::vector<std::string>>(), args.count("force") > 0);
  const int64_t token_count = args["tokens"].as<int64_t>();
  require(token_count > 0, "--tokens must be positive");
  const std::string device = choose_device(args["device"].as<std::string>());
  const std::string probe_spec = args["codec"].as<std::string>();
  const auto probe_codec = make_tensor_codec(probe_spec);
  require(!probe_codec->is_passthrough(), "--codec " + probe_spec + " stores floats: the probe must quantize");
  const Plan plan(probe_spec, args.count("rule") ? list_flag_values(args, "rule") : std::vector<std::string>{});

  const auto paths = args["inputs"].as<std::vector<std::string>>();
  const auto checkpoint = Checkpoint::open(paths);
  auto tensors = float_tensors_of(checkpoint);
  const std::string data = args["data"].as<std::string>();
  const Tokenizer tokenizer = Tokenizer::load(args.count("tokenizer") ? args["tokenizer"].as<std::string>() : find_tokenizer(data));
  // At the sequence length, rope base and softcap the checkpoint records, where it does.
  const RecordedSettings recorded = recorded_settings(checkpoint.metadata());
  EvalOptions eval;
  eval.seq_len = recorded.seq_len.value_or(eval.seq_len);
  eval.max_sequences = (token_count + eval.seq_len - 1) / eval.seq_len;
  const unsigned threads = args["threads"].as<unsigned>();
  eval.threads = static_cast<int>(threads ? threads : default_threads());
  const auto tokens = read_val_tokens(find_shards(data, "val"), static_cast<size_t>(eval.max_sequences * eval.seq_len + 1));
  auto loss_of = [&](const std::map<std::string, FloatTensor>& weights) {
    return evaluate_on(device, evaluation_model(weights, recorded, tokenizer), tokens, tokenizer.byte_table(), eval).val_loss;
  };

  std::vector<std::string> names;
  for (const auto& ref : checkpoint.tensors())
    if (plan.codec_for(ref.name, ref.dtype, ref.shape) == probe_codec->spec()) names.push_back(ref.name);
  require(!names.empty(), "the plan quantizes no tensor of this checkpoint with " + probe_spec);
  std::optional<Calibration> calibration;
  if (args.count("calibration")) calibration.emplace(Calibration::load(args["calibration"].as<std::string>()));
  const Sensitivity sensitivity = measure_sensitivity(
      tensors, names, loss_of, {probe_spec, calibration ? &*calibration : nullptr, {gptq_engine_on(device)}, progress_bars()});
  const double base_loss = sensitivity.base_loss;
  const auto& probes = sensitivity.probes;
  write_text(output, sensitivity_json(sensitivity));

  if (args.count("json")) {
    nlohmann::json j = {{"probe", probe_codec->spec()}, {"device", describe_device(device, eval.threads)},
                        {"tokens", tokens.size() - 1}, {"base_loss", base_loss},
                        {"space", sensitivity.output_space ? "output" : "weight"}, {"tensors", nlohmann::json::array()}};
    for (const auto& p : probes)
      j["tensors"].push_back({{"name", p.name}, {"sum_sq_error", p.sum_sq_error}, {"loss", p.loss},
                              {"loss_increase", p.loss - base_loss}, {"weight", p.weight}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("probe       %s on %zu tensors; %s val tokens; %s\n", probe_codec->spec().c_str(), probes.size(),
              with_commas(tokens.size() - 1).c_str(), describe_device(device, eval.threads).c_str());
  std::printf("base loss   %.6f\n\n", base_loss);
  std::printf("%-34s %14s %14s %14s\n", "tensor", "sq. error", "loss increase", "weight");
  for (const auto& p : probes)
    std::printf("%-34s %14.6g %14.6g %14.6g\n", p.name.c_str(), p.sum_sq_error, p.loss - base_loss, p.weight);
  std::printf("\nwrote:       %s\n", output.c_str());
  return 0;
}

}  // namespace pgolf::cli

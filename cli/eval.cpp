// pgolf eval: val_loss and val_bpb of a checkpoint or artifact on Parameter Golf val shards, in
// fp32: on the CPU by the reference model, or on a CUDA GPU held to it (--device).

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "artifact/load.h"
#include "cli/command.h"
#include "cli/evaluator.h"
#include "cli/format.h"
#include "cli/list_flag.h"
#include "cli/options.h"
#include "cli/val_data.h"
#include "core/error.h"
#include "core/spec.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "trainer/eval.h"

namespace pgolf::cli {

int eval_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf eval",
      "val_loss and val_bpb (Parameter Golf's byte counting) of a model on the val split, in fp32 on the CPU or a GPU.\n"
      "  pgolf eval samples/base9 --data samples/sp1024 --tokens 8192\n"
      "  pgolf eval base9.pgz --data DIR --stride 64 --json");
  options.positional_help("MODEL...").show_positional_help();
  options.add_options()
      ("data", "folder of *_val_*.bin shards (and the *.model tokenizer)", cxxopts::value<std::string>())
      ("tokens,val-tokens", "evaluate the first ceil(N / seq-len) sequences (default: every full sequence)",
       cxxopts::value<int64_t>())
      ("seq-len", "sequence length (default: the one the checkpoint records it was trained at, else 1024)",
       cxxopts::value<int>())
      ("rope-base", "RoPE base (default: the checkpoint's, else 10000)", cxxopts::value<double>())
      ("logit-softcap", "logit softcap (default: the checkpoint's, else 30)", cxxopts::value<double>())
      ("stride", "sliding-window eval: windows of seq-len advanced by S, each scoring its last S targets",
       cxxopts::value<int>()->default_value(number_text(EvalOptions{}.stride)))
      ("precision", "on a GPU: fp32 (the evaluator's own kernels, the reference's numbers), or the trainer's forward "
                    "in tf32 or bf16 (tensor cores); the CPU is fp32", cxxopts::value<std::string>()->default_value("fp32"))
      ("ttt", "legal score-first test-time training: none; sgd (the records' chunked full-model SGD: score every "
              "window of a chunk, then train on it); or lora (per-document rank-r adapters, scored then adapted chunk by "
              "chunk, reset at each document); reports plain, sliding and TTT val_bpb (lora: also the documents' without "
              "adapting)", cxxopts::value<std::string>()->default_value("none"))
      ("ttt-chunk", "TTT: targets per chunk (default: sgd " + number_text(TttSgdOptions{}.chunk_tokens) + ", lora " +
                    number_text(TttLoraOptions{}.chunk_tokens) + ")", cxxopts::value<int64_t>())
      ("ttt-lr", "TTT: learning rate (sgd: SGD's, cosine-decayed over the chunks, default " + number_text(TttSgdOptions{}.lr) +
                 "; lora: Adam's, default " + number_text(TttLoraOptions{}.lr) + ")", cxxopts::value<double>())
      ("ttt-lora-rank", "TTT lora: adapter rank", cxxopts::value<int>()->default_value(number_text(TttLoraOptions{}.rank)))
      ("ttt-lora-alpha", "TTT lora: adapters scaled by alpha / rank", cxxopts::value<double>()->default_value(number_text(TttLoraOptions{}.alpha)))
      ("ttt-lora-betas", "TTT lora: Adam's betas B1,B2 (the 2026-04-10 record: 0,0.999)",
       cxxopts::value<std::string>()->default_value(number_text(TttLoraOptions{}.beta1) + "," + number_text(TttLoraOptions{}.beta2)))
      ("ttt-lora-wd", "TTT lora: AdamW's decoupled weight decay (0: Adam; the 2026-04-10 record: 0.5)",
       cxxopts::value<double>()->default_value("0"))
      ("ttt-lora-matrices", "TTT lora: the block matrices adapted, ';'-separated or repeated (of attn.c_q, attn.c_k, "
                            "attn.c_v, attn.proj, mlp.fc, mlp.proj; default attn.c_q;attn.c_v)", cxxopts::value<std::vector<std::string>>())
      ("ttt-momentum", "TTT: SGD momentum", cxxopts::value<double>()->default_value(number_text(TttSgdOptions{}.momentum)))
      ("ttt-epochs", "TTT: passes over each chunk", cxxopts::value<int>()->default_value(number_text(TttSgdOptions{}.epochs)))
      ("ttt-batch", "TTT: windows per SGD step", cxxopts::value<int>()->default_value(number_text(TttSgdOptions{}.batch_sequences)))
      ("ttt-clip", "TTT: gradient-norm clip (0: none)", cxxopts::value<double>()->default_value(number_text(TttSgdOptions{}.grad_clip)))
      ("ttt-freeze", "TTT: the first N blocks keep their weights", cxxopts::value<int>()->default_value(number_text(TttSgdOptions{}.frozen_blocks)))
      ("tokenizer", "SentencePiece .model (default: the one in --data)", cxxopts::value<std::string>())
      ("threads", "CPU worker threads (default: every core)", cxxopts::value<int>())
      ("device", "auto, cpu or cuda (auto: cuda when a GPU is present, else cpu)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("json", "print JSON")
      ("model", "safetensors files/folder (one checkpoint) or a .pgz artifact",
       cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"model"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("model") > 0, "no model given (pgolf eval --help)");
  require(args.count("data") > 0, "--data DIR is required (pgolf eval --help)");
  const auto model_paths = args["model"].as<std::vector<std::string>>();
  const auto data_dir = args["data"].as<std::string>();
  const std::string device = choose_device(args["device"].as<std::string>());

  // The model's settings: what its checkpoint records, each flag given overriding it (with a
  // warning where they differ), else the baseline's.
  std::map<std::string, std::string> metadata;
  const auto tensors = load_float_tensors(model_paths, &metadata);
  RecordedSettings settings = recorded_settings(metadata);
  std::string sources;
  auto resolve = [&](auto& slot, const char* flag, auto fallback) {
    using Value = std::decay_t<decltype(fallback)>;
    const bool given = args.count(flag) > 0;
    if (given && slot && args[flag].as<Value>() != *slot)
      std::fprintf(stderr, "pgolf eval: warning: --%s %s overrides the %s the checkpoint records\n", flag,
                   number_text(args[flag].as<Value>()).c_str(), number_text(*slot).c_str());
    sources += std::string(sources.empty() ? "" : ", ") + flag + " " +
               number_text(given ? args[flag].as<Value>() : slot ? *slot : fallback) +
               (given ? " (flag)" : slot ? " (checkpoint)" : " (default)");
    if (given) slot = args[flag].as<Value>();
    if (!slot) slot = fallback;
  };
  const ModelConfig baseline;
  resolve(settings.seq_len, "seq-len", 1024);
  resolve(settings.rope_base, "rope-base", baseline.rope_base);
  resolve(settings.logit_softcap, "logit-softcap", baseline.logit_softcap);

  EvalOptions eval;
  eval.seq_len = *settings.seq_len;
  eval.stride = args["stride"].as<int>();
  eval.threads = args.count("threads") ? args["threads"].as<int>() : static_cast<int>(std::thread::hardware_concurrency());
  require(eval.seq_len > 0, "--seq-len must be positive");
  require(eval.threads > 0, "--threads must be positive");
  if (args.count("tokens")) {
    int64_t tokens = args["tokens"].as<int64_t>();
    require(tokens > 0, "--tokens must be positive");
    eval.max_sequences = (tokens + eval.seq_len - 1) / eval.seq_len;
  }

  const Precision precision = parse_precision(args["precision"].as<std::string>());
  require(precision != Precision::kAuto, "--precision must be fp32, tf32 or bf16");
  require(precision == Precision::kFp32 || device == "cuda", "--precision " + args["precision"].as<std::string>() +
                                                                 " is for --device cuda (the CPU is fp32)");
  const std::string ttt_mode = args["ttt"].as<std::string>();
  require(ttt_mode == "none" || ttt_mode == "sgd" || ttt_mode == "lora", "--ttt " + ttt_mode + ": none, sgd or lora");
  TttSgdOptions ttt;
  ttt.momentum = args["ttt-momentum"].as<double>();
  ttt.epochs = args["ttt-epochs"].as<int>();
  ttt.batch_sequences = args["ttt-batch"].as<int>();
  ttt.grad_clip = args["ttt-clip"].as<double>();
  ttt.frozen_blocks = args["ttt-freeze"].as<int>();
  TttLoraOptions lora;
  lora.rank = args["ttt-lora-rank"].as<int>();
  lora.alpha = args["ttt-lora-alpha"].as<double>();
  if (args.count("ttt-lora-matrices")) lora.matrices = list_flag_values(args, "ttt-lora-matrices");
  const std::string betas = args["ttt-lora-betas"].as<std::string>();
  const size_t comma = betas.find(',');
  require(comma != std::string::npos, "--ttt-lora-betas " + betas + ": B1,B2");
  lora.beta1 = parse_number(std::string_view(betas).substr(0, comma), "--ttt-lora-betas");
  lora.beta2 = parse_number(std::string_view(betas).substr(comma + 1), "--ttt-lora-betas");
  lora.weight_decay = args["ttt-lora-wd"].as<double>();
  if (args.count("ttt-chunk")) ttt.chunk_tokens = lora.chunk_tokens = args["ttt-chunk"].as<int64_t>();
  if (args.count("ttt-lr")) ttt.lr = lora.lr = args["ttt-lr"].as<double>();
  for (const char* flag : {"ttt-chunk", "ttt-lr"})
    require(ttt_mode != "none" || args.count(flag) == 0, std::string("--") + flag + " needs --ttt sgd or lora");
  for (const char* flag : {"ttt-momentum", "ttt-epochs", "ttt-batch", "ttt-clip", "ttt-freeze"})
    require(ttt_mode == "sgd" || args.count(flag) == 0, std::string("--") + flag + " needs --ttt sgd");
  for (const char* flag : {"ttt-lora-rank", "ttt-lora-alpha", "ttt-lora-matrices", "ttt-lora-betas", "ttt-lora-wd"})
    require(ttt_mode == "lora" || args.count(flag) == 0, std::string("--") + flag + " needs --ttt lora");

  const std::string tokenizer_path = args.count("tokenizer") ? args["tokenizer"].as<std::string>() : find_tokenizer(data_dir);
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  const Model<float> model = evaluation_model(tensors, settings, tokenizer);
  const ModelConfig& config = model.config();
  const auto shards = find_shards(data_dir, "val");
  const auto tokens = read_val_tokens(shards, eval.max_sequences > 0 ? eval.max_sequences * eval.seq_len + 1 : 0);

  const bool json = args.count("json") > 0;
  if (!json) eval.progress = progress_bars();  // a bar on a terminal, timed lines in a log
  const std::string device_text = describe_device(device, eval.threads);
  // With TTT: the plain and sliding numbers first, then the TTT one (over the same windows as the
  // sliding one) is the result.
  std::vector<std::pair<std::string, EvalResult>> stages;
  const ByteTable& byte_table = tokenizer.byte_table();
  if (ttt_mode == "sgd") ttt.validate(config.layers);
  if (ttt_mode == "lora" && !args.count("ttt-chunk"))  // the default, for a model of shorter sequences
    lora.chunk_tokens = std::min<int64_t>(lora.chunk_tokens, eval.seq_len);
  if (ttt_mode == "lora") lora.validate(config.layers, eval.seq_len);
  const std::string ttt_text = ttt_mode == "sgd" ? ttt.describe() : ttt_mode == "lora" ? lora.describe() : "";
  if (ttt_mode != "none") {
    EvalOptions plain = eval;
    plain.stride = 0;
    stages.emplace_back("plain", evaluate_on(device, model, tokens, byte_table, plain, precision));
    if (eval.stride > 0) stages.emplace_back("sliding", evaluate_on(device, model, tokens, byte_table, eval, precision));
    if (ttt_mode == "lora")
      stages.emplace_back("documents", evaluate_lora_ttt_on(device, model, tokens, byte_table, eval, lora, false, precision));
  }
  const EvalResult r = ttt_mode == "sgd"    ? evaluate_ttt_on(device, model, tokens, byte_table, eval, ttt, precision)
                       : ttt_mode == "lora" ? evaluate_lora_ttt_on(device, model, tokens, byte_table, eval, lora, true, precision)
                                            : evaluate_on(device, model, tokens, byte_table, eval, precision);
  // --tokens past the val split scores all of it: said, not silently clamped.
  const bool clamped = eval.max_sequences > 0 && r.sequences < eval.max_sequences;
  if (clamped)
    std::fprintf(stderr, "warning: --tokens asks for %s sequences of %d; the val split holds %s: scored all of them\n",
                 with_commas(eval.max_sequences).c_str(), eval.seq_len, with_commas(r.sequences).c_str());

  if (json) {
    nlohmann::json j = {{"model", model_paths},        {"config", config.describe()},    {"data", data_dir},
                        {"tokenizer", tokenizer_path}, {"seq_len", eval.seq_len},        {"stride", eval.stride},
                        {"sequences", r.sequences},    {"windows", r.windows},           {"val_loss", r.val_loss},
                        {"val_bpb", r.val_bpb},        {"tokens", r.tokens},             {"bytes", r.bytes},
                        {"seconds", r.seconds},        {"tokens_per_second", r.tokens_per_second},
                        {"threads", eval.threads},     {"device", device_text},         {"settings", sources},
                        {"tokens_clamped", clamped},   {"precision", args["precision"].as<std::string>()}};
    if (ttt_mode != "none") {
      j["ttt"] = ttt_text;
      for (const auto& [stage, result] : stages)
        j[stage] = {{"val_loss", result.val_loss}, {"val_bpb", result.val_bpb}, {"seconds", result.seconds}};
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("model       %s (%zu tensors: %s)\n", model_paths[0].c_str(), tensors.size(), config.describe().c_str());
  std::printf("settings    %s\n", sources.c_str());
  std::printf("data        %s: %zu val shards, %s tokens read; tokenizer %s\n", data_dir.c_str(), shards.size(),
              with_commas(tokens.size()).c_str(), tokenizer_path.c_str());
  std::string scope = (eval.max_sequences > 0 && !clamped ? "first " : "all ") + with_commas(r.sequences) +
                      " sequences of " + std::to_string(eval.seq_len);
  if (eval.max_sequences > 0) scope += clamped ? " (--tokens clamped to the val split)" : " (--tokens rounded up to whole sequences)";
  const std::string mode = eval.stride > 0 ? "sliding, stride " + std::to_string(eval.stride) : "plain";
  std::printf("eval        %s, %s, %s\n", scope.c_str(), mode.c_str(), args["precision"].as<std::string>().c_str());
  if (ttt_mode != "none") std::printf("ttt         %s\n", ttt_text.c_str());
  for (const auto& [stage, result] : stages)
    std::printf("%-11s val_loss %.6f val_bpb %.6f (%.2f s)\n", stage.c_str(), result.val_loss, result.val_bpb,
                result.seconds);
  std::printf("device      %s\n", device_text.c_str());
  std::printf("val_loss    %.6f\n", r.val_loss);
  std::printf("val_bpb     %.6f\n", r.val_bpb);
  std::printf("tokens      %s target tokens\n", with_commas(r.tokens).c_str());
  std::printf("bytes       %s bytes counted\n", with_commas(r.bytes).c_str());
  std::printf("seconds     %.2f\n", r.seconds);
  std::printf("tokens/s    %.0f\n", r.tokens_per_second);
  return 0;
}

}  // namespace pgolf::cli

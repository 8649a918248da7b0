// pgolf compress: checkpoint in, one artifact out, a line per tensor and the totals.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "artifact/artifact.h"
#include "artifact/profile.h"
#include "checkpoint/safetensors.h"
#include "cli/command.h"
#include "cli/format.h"
#include "cli/list_flag.h"
#include "cli/evaluator.h"
#include "cli/options.h"
#include "codecs/byte_codec.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "plan/budget_plan.h"
#include "plan/plan.h"
#include "quant/calibration.h"
#include "quant/tensor_codec.h"

namespace pgolf::cli {

namespace {

nlohmann::json distortion_json(const Distortion& d) {
  auto finite_or_null = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"mse", d.mse()},
          {"relative_mse", finite_or_null(d.relative_mse())},
          {"snr_db", finite_or_null(d.snr_db())},
          {"cosine", d.cosine()},
          {"max_abs_error", d.max_abs_error},
          {"output_relative_error", d.has_output() ? finite_or_null(d.output_relative_error()) : nlohmann::json(nullptr)},
          {"output_sq_error", d.has_output() ? nlohmann::json(d.output_sq_error) : nlohmann::json(nullptr)}};
}

// "rel_mse 1.234e-04", and the output-space error where the tensor is calibrated.
std::string error_text(const std::string& codec, const Distortion& d) {
  if (codec == kRawSpec) return "exact";
  char buf[96];
  int n = std::snprintf(buf, sizeof buf, "rel_mse %.3e", d.relative_mse());
  if (d.has_output()) std::snprintf(buf + n, sizeof buf - n, "  out_rel %.3e", d.output_relative_error());
  return buf;
}

void print_table(const CompressResult& r, uint64_t input_bytes, int64_t params, const Distortion& quantized,
                 const Distortion& all, double seconds) {
  size_t n = r.tensors.size();
  for (size_t i = 0; i < n; ++i) {
    const auto& t = r.tensors[i];
    std::string err = error_text(t.codec, t.distortion);
    std::printf("[%3zu/%zu] %-34s %-12s %4s -> %-24s %11s B -> %11s B  %s\n", i + 1, n, t.name.c_str(),
                shape_string(t.shape).c_str(), std::string(dtype_name(t.dtype)).c_str(), t.codec.c_str(),
                with_commas(t.input_bytes).c_str(), with_commas(static_cast<uint64_t>(std::llround(t.stored_bytes))).c_str(),
                err.c_str());
  }
  std::printf("\nstream groups:\n");
  for (const auto& g : r.manifest.groups)
    std::printf("  %-12s %-20s %13s B -> %13s B  (%.3f)%s\n", g.name.c_str(), g.codec.c_str(), with_commas(g.raw_size).c_str(),
                with_commas(g.stored_size).c_str(), g.raw_size ? double(g.stored_size) / double(g.raw_size) : 0.0,
                g.stored_size > g.raw_size ? "  grew: --compressor none or auto stores it smaller" : "");
  std::printf("\ncheckpoint:  %s B, %s parameters\n", with_commas(input_bytes).c_str(), with_commas(params).c_str());
  const double ratio = double(input_bytes) / double(r.bytes.size());
  std::printf("artifact:    %s B, %.3f bits/parameter, %.3fx %s\n", with_commas(r.bytes.size()).c_str(),
              params ? 8.0 * double(r.bytes.size()) / double(params) : 0.0, ratio >= 1 ? ratio : 1 / ratio,
              ratio >= 1 ? "smaller" : "LARGER than the checkpoint");
  std::printf("quantized:   %s parameters, rel_mse %.4e, snr %.2f dB, cosine %.6f, max_abs_error %.4g\n",
              with_commas(quantized.count).c_str(), quantized.relative_mse(), quantized.snr_db(), quantized.cosine(),
              quantized.max_abs_error);
  if (quantized.has_output())
    std::printf("output:      tr(dW H dW^T) / tr(W H W^T) %.4e over %lld calibrated matrices\n",
                quantized.output_relative_error(), static_cast<long long>(quantized.output_tensors));
  std::printf("all tensors: rel_mse %.4e, snr %.2f dB, cosine %.6f\n", all.relative_mse(), all.snr_db(), all.cosine());
  std::printf("time:        %.2f s\n", seconds);
}

// The budget solver's choice: per tensor its spec, estimated bytes and error; then how the
// estimate compared with the artifact.
// A warning per spec that lowers a parameter to fit some tensors (lrcorr:rank=100000 on a [512, 512]
// matrix), naming the first such tensor and how many more.
void warn_clamped(const Checkpoint& checkpoint, const std::vector<std::string>& specs) {
  std::map<std::string, std::pair<std::string, int>> clamped;  // spec -> (first tensor's note, tensors)
  const auto& refs = checkpoint.tensors();
  for (size_t i = 0; i < refs.size(); ++i) {
    if (specs[i] == kRawSpec) continue;
    const std::string note = make_tensor_codec(specs[i])->clamped(TensorShape{refs[i].shape});
    if (note.empty()) continue;
    auto [it, first] = clamped.try_emplace(specs[i], refs[i].name + " " + shape_string(refs[i].shape) + ": " + note, 0);
    ++it->second.second;
  }
  for (const auto& [spec, seen] : clamped)
    std::fprintf(stderr, "warning: %s does not fit %d tensor%s as written (%s)\n", spec.c_str(), seen.second,
                 seen.second == 1 ? "" : "s", seen.first.c_str());
}

void print_budget_plan(const BudgetPlan& plan, uint64_t budget, uint64_t artifact_bytes) {
  std::printf("budget plan (--auto): %zu candidates, %zu tensors chosen for, %d build%s (the first under %s B: build %d), "
              "minimising %s\n",
              plan.candidates.size(), plan.tensors.size(), plan.attempts, plan.attempts == 1 ? "" : "s",
              with_commas(budget).c_str(), plan.attempts_to_fit,
              plan.output_space ? "output error tr(dW H dW^T)" : "squared weight error");
  for (const auto& t : plan.tensors) {
    std::string err = error_text(t.spec, t.distortion);
    std::printf("  %-34s %-40s est. %11s B  %s  weight %g\n", t.name.c_str(), t.spec.c_str(),
                with_commas(static_cast<uint64_t>(std::llround(t.estimated_bytes))).c_str(), err.c_str(), t.weight);
  }
  double actual = static_cast<double>(artifact_bytes);
  std::printf("  estimated %s B, built %s B (estimate %+.2f%%)\n\n",
              with_commas(static_cast<uint64_t>(std::llround(plan.estimated_bytes))).c_str(), with_commas(artifact_bytes).c_str(),
              100.0 * (plan.estimated_bytes - actual) / actual);
}

nlohmann::json budget_plan_json(const BudgetPlan& plan) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : plan.tensors)
    tensors.push_back({{"name", t.name}, {"codec", t.spec}, {"estimated_bytes", t.estimated_bytes}, {"weight", t.weight},
                       {"distortion", distortion_json(t.distortion)}});
  return {{"candidates", plan.candidates}, {"attempts", plan.attempts}, {"attempts_to_fit", plan.attempts_to_fit},
          {"estimated_bytes", plan.estimated_bytes}, {"output_space", plan.output_space}, {"tensors", tensors}};
}

// The bytes of the files that ship with the artifact, as they are.
uint64_t counted_bytes(const std::vector<std::string>& files) {
  uint64_t total = 0;
  for (const auto& file : files) {
    std::error_code ec;
    require(std::filesystem::is_regular_file(file, ec), "--code " + file + ": no such file");
    total += std::filesystem::file_size(file);
  }
  return total;
}

}  // namespace

int compress_main(int argc, char** argv) {
  cxxopts::Options options("pgolf compress", "Compress a safetensors checkpoint into one .pgz artifact.\n"
                                             "  pgolf compress samples/base9 -o base9.pgz --codec int6 --compressor zstd:22");
  options.positional_help("IN...").show_positional_help();
  options.add_options()
      ("o,output,out", "artifact to write (.pgz) (or --out)", cxxopts::value<std::string>())
      ("codec", "codec for large 2-D float tensors: intN[:clip=absmax|quantile:P|std:K|mse], "
                "ecsq:relmse=R|bits=B|step=S|totalrelmse=T, gptq+GRID (GRID intN or ecsq; needs --calibration), "
                "fp16, bf16, fp32; or 'lossless': every tensor exact",
       cxxopts::value<std::string>()->default_value("int6"))
      ("compressor", "byte codec for every stream group: zstd:1..22, zlib:1..9, xz:0..9, rans, vrans, none; "
                     "auto: per group the smallest of rans, zstd:22, zlib:9 (auto:for=python: of vrans, zlib:9, xz:9) "
                     "(default: auto, the smallest (BENCHMARKS.md); auto:for=python under --profile python)",
       cxxopts::value<std::string>())
      ("profile", "who decodes the artifact: native (pgolf) or python (the numpy decoder of pgolf export-decoder, "
                  "for a Parameter Golf submission): every stream group then uses a byte codec it reads",
       cxxopts::value<std::string>()->default_value("native"))
      ("code", "files that ship with the artifact (a submission's train_gpt.py, the exported decoder): their bytes "
               "count in --budget and in the total (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("rule", "REGEX=SPEC: codec for tensors whose name matches (repeatable, first match wins; SPEC 'raw' stores bytes as they are)",
       cxxopts::value<std::vector<std::string>>())
      ("budget", "fail (exit 2, nothing written) unless the artifact and --code fit in this many bytes (decimal: 16MB, "
                 "15.9MB, 500kB; pg: Parameter Golf's cap, 16000000)",
       cxxopts::value<std::string>())
      ("calibration", "input Hessians from pgolf calibrate: GPTQ's, and the output-space error tr(dW H dW^T) reported "
                      "and (--auto) minimised", cxxopts::value<std::string>())
      ("device", "where GPTQ runs: auto, cpu or cuda (auto: cuda when a GPU is present; the CPU is the oracle, the GPU "
                 "gives its symbols but for rare +-1 flips)", cxxopts::value<std::string>()->default_value("auto"))
      ("auto", "with --budget: choose each quantized tensor's codec from --candidates for the least error that fits")
      ("candidates", "for --auto: codec specs, ';'-separated or repeated (default: int4..int8 under every clip, kmeans, "
                     "prune, ECSQ shared steps and, with --calibration, GPTQ over ECSQ (rate-aware, rdo=1) and int-N)",
       cxxopts::value<std::vector<std::string>>())
      ("sensitivity", "for --auto: JSON {\"tensor\": weight} scaling each tensor's squared error (default 1)",
       cxxopts::value<std::string>())
      ("plan", "a plan file (one spec per tensor, as --save-plan writes it) instead of --codec, --rule and --auto",
       cxxopts::value<std::string>())
      ("save-plan", "write the plan used, one spec per tensor as built (fitted: ecsq:totalrelmse's step resolved), "
                    "to replay or edit with --plan", cxxopts::value<std::string>())
      ("dry-run", "measure everything, write nothing (but --save-plan)")
      ("json", "print one JSON object instead of the table")
      ("force,overwrite", "replace an existing output (or --overwrite)")
      ("threads", "threads (default: all cores)", cxxopts::value<unsigned>()->default_value("0"))
      ("inputs", "checkpoint files, an index.json, a folder or one shard of a set", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"inputs"});
  cxxopts::ParseResult args;
  std::string codecs = "tensor codecs (--codec, --rule, --candidates), with examples:\n";
  for (const auto& row : tensor_codec_table()) {
    codecs += "  " + row.usage + "\n     ";
    for (const auto& example : row.examples) codecs += " " + example;
    codecs += "\n";
  }
  if (!parse_or_help(options, argc, argv, args, {}, codecs)) return 0;
  require(args.count("inputs") > 0, "no input checkpoint given (pgolf compress --help)");
  bool dry_run = args.count("dry-run") > 0, as_json = args.count("json") > 0;
  require(dry_run || args.count("output") > 0, "no output given: pass -o OUT.pgz (or --dry-run)");
  std::string output = args.count("output") ? args["output"].as<std::string>() : "";

  auto start = std::chrono::steady_clock::now();
  auto checkpoint = Checkpoint::open(args["inputs"].as<std::vector<std::string>>());
  std::vector<std::string> rules = args.count("rule") ? args["rule"].as<std::vector<std::string>>() : std::vector<std::string>{};
  Plan plan(args["codec"].as<std::string>(), rules);
  for (const std::string& rule : plan.unmatched_rules(checkpoint))
    std::fprintf(stderr, "warning: --rule '%s' matches no tensor of this checkpoint\n", rule.c_str());
  const DecoderProfile profile = decoder_profile(args["profile"].as<std::string>());
  const std::string compressor_spec =
      args.count("compressor") ? args["compressor"].as<std::string>() : default_compressor(profile);
  require_decodable(profile, compressor_spec, "--compressor");
  auto compressor = make_byte_codec(compressor_spec);
  const std::vector<std::string> code_files = args.count("code") ? list_flag_values(args, "code") : std::vector<std::string>{};
  const uint64_t code_bytes = counted_bytes(code_files);
  std::optional<uint64_t> budget;
  if (args.count("budget")) budget = parse_byte_count(args["budget"].as<std::string>());
  require(!budget || code_bytes < *budget, "the code alone (" + with_commas(code_bytes) + " B) does not fit the budget of " +
                                               (budget ? with_commas(*budget) : std::string()) + " B");
  // The output checked before the work, not after.
  std::vector<std::string> reads = checkpoint.files();
  if (args.count("calibration")) reads.push_back(args["calibration"].as<std::string>());
  reads.insert(reads.end(), code_files.begin(), code_files.end());
  // Flags that would do nothing are refused rather than ignored.
  for (const char* flag : {"candidates", "sensitivity"})
    require(!args.count(flag) || args.count("auto"), std::string("--") + flag +
                                                         " is for --auto (the budget solver); without it nothing reads it");
  require(!args.count("auto") || !args.count("codec"),
          "--auto chooses every quantized tensor's codec from --candidates: --codec has no effect with it");
  const bool replay = args.count("plan") > 0;
  require(!replay || (!args.count("codec") && !args.count("rule") && !args.count("auto")),
          "--plan gives every tensor its spec: it replaces --codec, --rule and --auto");
  if (replay) reads.push_back(args["plan"].as<std::string>());
  if (!dry_run) check_output(output, reads, args.count("force") > 0);
  if (args.count("save-plan")) {
    if (!dry_run) reads.push_back(output);
    check_output(args["save-plan"].as<std::string>(), reads, args.count("force") > 0);
  }

  std::optional<Calibration> calibration;
  if (args.count("calibration")) calibration.emplace(Calibration::load(args["calibration"].as<std::string>()));
  const Calibration* calibrated = calibration ? &*calibration : nullptr;
  // Only GPTQ runs on the device, and only with calibration: otherwise no GPU is woken (a flag
  // given is still checked).
  const GptqEngine* gptq =
      calibrated || args.count("device") ? gptq_engine_on(choose_device(args["device"].as<std::string>())) : nullptr;

  CompressResult result;
  std::optional<BudgetPlan> budget_plan;
  if (args.count("auto")) {
    require(budget.has_value(), "--auto needs --budget BYTES");
    BudgetPlanOptions auto_options;
    auto_options.candidates =
        args.count("candidates") ? list_flag_values(args, "candidates") : default_budget_candidates(calibrated != nullptr);
    auto_options.rules = rules;
    auto_options.calibration = calibrated;
    auto_options.gptq = gptq;
    if (args.count("sensitivity")) auto_options.sensitivity = read_sensitivity_file(args["sensitivity"].as<std::string>());
    auto_options.threads = args["threads"].as<unsigned>();
    auto_options.progress = progress_bars();
    budget_plan = plan_for_budget(checkpoint, *budget - code_bytes, *compressor, auto_options);
    result = std::move(budget_plan->artifact);
  } else {
    const std::vector<std::string> specs =
        replay ? read_plan_file(args["plan"].as<std::string>(), checkpoint) : plan.specs_for(checkpoint);
    warn_clamped(checkpoint, specs);
    result = compress_checkpoint(checkpoint, specs, *compressor, {args["threads"].as<unsigned>(), progress_bars(), calibrated, gptq});
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& g : result.manifest.groups) require_decodable(profile, g.codec, "stream group '" + g.name + "': codec");
  const uint64_t total_bytes = result.bytes.size() + code_bytes;

  uint64_t input_bytes = 0;
  int64_t params = 0;
  Distortion quantized, all;
  for (const auto& t : result.tensors) {
    input_bytes += t.input_bytes;
    params += element_count(t.shape);
    all.add(t.distortion);
    if (t.quantized) quantized.add(t.distortion);
  }

  if (as_json) {
    nlohmann::json j;
    for (const auto& t : result.tensors)
      j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", std::string(dtype_name(t.dtype))},
                              {"codec", t.codec}, {"input_bytes", t.input_bytes}, {"stream_bytes", t.stream_bytes},
                              {"stored_bytes", t.stored_bytes}, {"distortion", distortion_json(t.distortion)}});
    for (const auto& g : result.manifest.groups)
      j["groups"].push_back({{"name", g.name}, {"codec", g.codec}, {"raw_size", g.raw_size}, {"stored_size", g.stored_size}});
    j["checkpoint_bytes"] = input_bytes;
    j["parameters"] = params;
    j["artifact_bytes"] = result.bytes.size();
    j["bits_per_parameter"] = params ? 8.0 * double(result.bytes.size()) / double(params) : 0.0;
    j["quantized"] = distortion_json(quantized);
    j["quantized_parameters"] = quantized.count;
    j["all"] = distortion_json(all);
    if (calibration) j["calibration"] = calibration->path();
    j["seconds"] = seconds;
    j["code_bytes"] = code_bytes;
    j["total_bytes"] = total_bytes;
    if (budget) j["budget"] = *budget;
    j["written"] = !dry_run && (!budget || total_bytes <= *budget);
    if (budget_plan) j["auto"] = budget_plan_json(*budget_plan);
    std::cout << j.dump(2) << "\n";
  } else {
    if (budget_plan) print_budget_plan(*budget_plan, *budget, result.bytes.size());
    print_table(result, input_bytes, params, quantized, all, seconds);
    if (!code_files.empty() || budget)
      std::printf("artifact + code = %s + %s = %s B%s\n", with_commas(result.bytes.size()).c_str(),
                  with_commas(code_bytes).c_str(), with_commas(total_bytes).c_str(),
                  budget ? (" of " + with_commas(*budget)).c_str() : "");
  }

  if (budget && total_bytes > *budget)
    throw InputError("the artifact" + std::string(code_bytes ? " and its code are " : " is ") + with_commas(total_bytes) +
                     " bytes, " + with_commas(total_bytes - *budget) + " over the budget of " + with_commas(*budget) +
                     (dry_run ? "" : "; nothing written"));
  if (args.count("save-plan")) {
    std::vector<std::string> built;
    for (const auto& t : result.tensors) built.push_back(t.codec);
    write_plan_file(args["save-plan"].as<std::string>(), checkpoint, built, args.count("force") > 0);
    if (!as_json) std::printf("plan:        %s\n", args["save-plan"].as<std::string>().c_str());
  }
  if (!dry_run) {
    write_file_atomic(output, result.bytes, args.count("force") > 0);
    if (!as_json) std::printf("wrote:       %s\n", output.c_str());
  }
  return 0;
}

}  // namespace pgolf::cli

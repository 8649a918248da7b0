#include "plan/sweep.h"

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <regex>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "core/error.h"
#include "core/progress.h"
#include "plan/plan.h"

namespace pgolf {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// SDClip's k per bit width: of k in {3, 4, 5, 6, 8, 10, 12.85}, the one with the least relative
// MSE on base9. Only int4 and int5 gain from clipping (rel. MSE 1.87e-2 -> 1.54e-2, 4.08e-3 ->
// 3.78e-3); from int6 on every k below 12.85 adds error, and 12.85 hardly ever clips.
double std_clip_k(int bits) { return bits <= 5 ? 3 : 12.85; }

// ECSQ's lambda (squared weight error per bit of index) for a codebook of K: 1e-4 at K = 256
// lands at int6's entropy on base9 (11.4 MB of per-tensor entropy, rel. MSE 8.0e-4), and
// smaller codebooks get coarser trade-offs (4e-4 at K = 16 saves 5% of Lloyd's entropy).
double ecsq_lambda(int k) { return 1.6e-3 / std::sqrt(static_cast<double>(k)); }
constexpr const char* kEcsqBeatsInt6 = "kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.000175";

}  // namespace

double SweepResult::bits_per_parameter() const {
  return parameters ? 8.0 * static_cast<double>(artifact_bytes) / static_cast<double>(parameters) : 0.0;
}

bool is_symbol_group(const std::string& group) {
  return group.starts_with("int") || group.starts_with("kmeans") || group.starts_with("ecsq");
}

std::vector<SweepResult> run_sweep(const Checkpoint& checkpoint, std::span<const SweepPoint> points,
                                   const SweepOptions& options) {
  require(!options.compressors.empty(), "no compressor given");
  std::vector<std::unique_ptr<ByteCodec>> compressors;
  for (const auto& spec : options.compressors) compressors.push_back(make_byte_codec(spec));
  const CompressOptions threads{options.threads, {}, options.calibration, options.gptq};
  // Per point one encode, one pack per compressor, one evaluation.
  ProgressCounter steps(options.progress, "bench",
                        points.size() * (1 + options.compressors.size() + (options.evaluate ? 1 : 0)));

  std::vector<SweepResult> results;
  for (const auto& point : points) {
    const auto specs = Plan(point.codec, point.rules).specs_for(checkpoint);
    auto start = std::chrono::steady_clock::now();
    const EncodedCheckpoint encoded = encode_checkpoint(checkpoint, specs, threads);
    const double encode_seconds = seconds_since(start);
    steps.advance();

    // Order-0 entropy of the symbol streams: per tensor, and per group as the artifact stores it.
    std::vector<double> tensor_entropy(encoded.tensors.size(), 0);
    double tensor_entropy_sum = 0;
    std::map<std::string, SymbolHistogram> group_histograms;
    for (size_t i = 0; i < encoded.tensors.size(); ++i)
      for (const auto& stream : encoded.tensors[i].streams) {
        if (!is_symbol_group(stream.group)) continue;
        const int symbol_bytes = stream.integer ? stream.element_bytes : 1;  // ecsq16: 2-byte symbols
        SymbolHistogram h(symbol_bytes);
        h.add(stream.bytes);
        tensor_entropy[i] += h.entropy_bytes();
        tensor_entropy_sum += h.entropy_bytes();
        group_histograms.try_emplace(stream.group, symbol_bytes).first->second.add(h);
      }
    double symbol_entropy = 0;
    for (const auto& [group, h] : group_histograms) symbol_entropy += h.entropy_bytes();

    std::optional<double> val_bpb;
    for (size_t c = 0; c < compressors.size(); ++c) {
      SweepResult r;
      r.point = point;
      r.compressor = compressors[c]->spec();
      start = std::chrono::steady_clock::now();
      const CompressResult packed = pack_artifact(encoded, *compressors[c], threads);
      r.encode_seconds = encode_seconds + seconds_since(start);
      steps.advance();
      start = std::chrono::steady_clock::now();
      DecodedArtifact decoded = decode_artifact(packed.bytes, point.label + " (" + r.compressor + ")");
      r.decode_seconds = seconds_since(start);
      if (c == 0 && options.evaluate) {
        val_bpb = options.evaluate(std::move(decoded));
        steps.advance();
      }
      r.val_bpb = val_bpb;
      r.artifact_bytes = packed.bytes.size();
      r.symbol_entropy_bytes = symbol_entropy;
      r.tensor_entropy_bytes = tensor_entropy_sum;
      for (size_t i = 0; i < packed.tensors.size(); ++i) {
        const TensorReport& t = packed.tensors[i];
        r.parameters += element_count(t.shape);
        if (t.quantized) {
          r.quantized.add(t.distortion);
          ++r.quantized_tensors;
        }
        r.tensors.push_back({t, tensor_entropy[i]});
      }
      results.push_back(std::move(r));
    }
  }
  return results;
}

std::vector<std::string> int_n_sweep_specs() {
  std::vector<std::string> specs;
  for (int bits = 4; bits <= 8; ++bits) specs.push_back("int" + std::to_string(bits));
  for (int bits = 4; bits <= 8; ++bits) specs.push_back("int" + std::to_string(bits) + ":clip=quantile:0.9999");
  for (int bits = 4; bits <= 8; ++bits) {
    char k[32];
    std::snprintf(k, sizeof k, "%g", std_clip_k(bits));
    specs.push_back("int" + std::to_string(bits) + ":clip=std:" + k);
  }
  for (int bits = 4; bits <= 8; ++bits) specs.push_back("int" + std::to_string(bits) + ":clip=mse");
  return specs;
}

// Relative MSE of all quantized tensors together: 4e-3 (step 0.046 on base9, 8.4 MB) to 4e-4
// (step 0.0146, 13.4 MB); 1.35e-3 is base9's step 0.0299 (10.5 MB).
// Rate-aware rounding under GPTQ: on base9, first-64 val_bpb 0.990302 -> 0.988926 at one shared
// step (BENCHMARKS.md, "Rate-aware rounding"), with fewer bytes.
constexpr const char* kGptqEcsqRdo = "1";
constexpr const char* kEcsqTotalRelMse[] = {"0.004", "0.0028", "0.002", "0.00135", "0.001", "0.0008", "0.0006", "0.0004"};

std::vector<std::string> ecsq_sweep_specs() {
  std::vector<std::string> specs;
  for (const char* t : kEcsqTotalRelMse) specs.push_back(std::string("ecsq:totalrelmse=") + t);
  return specs;
}

std::vector<std::string> gptq_sweep_specs() {
  std::vector<std::string> specs;
  for (const auto& spec : ecsq_sweep_specs()) specs.push_back("gptq+" + spec + ",rdo=" + kGptqEcsqRdo);
  for (int bits = 5; bits <= 8; ++bits) {
    char k[32];
    std::snprintf(k, sizeof k, "%g", std_clip_k(bits));
    specs.push_back("gptq+int" + std::to_string(bits) + ":clip=std:" + k);
  }
  return specs;
}

std::vector<SweepPoint> default_sweep(std::vector<std::string>& skipped, bool calibrated) {
  std::vector<SweepPoint> all;
  for (const auto& spec : int_n_sweep_specs()) {
    std::string clip = spec.find(":clip=") == std::string::npos ? "absmax" : spec.substr(spec.find(":clip=") + 6);
    if (clip.starts_with("std:")) clip = "std";  // k varies with the bit width
    all.push_back({spec, "int-N " + clip, spec, {}});
  }
  for (int k : {16, 64, 256}) all.push_back({"kmeans:k=" + std::to_string(k), "kmeans", "kmeans:k=" + std::to_string(k), {}});
  for (int k : {16, 64, 256}) {
    char spec[96];
    std::snprintf(spec, sizeof spec, "kmeans:k=%d,method=ecsq,lambda=%g", k, ecsq_lambda(k));
    all.push_back({spec, "kmeans ecsq", spec, {}});
  }
  // The setting that beats int6 absmax on both axes on base9 (rel. MSE 9.44e-4 against 9.55e-4 at
  // 6% fewer bytes): the sweep shows it next to the family's fixed-lambda points.
  all.push_back({kEcsqBeatsInt6, "kmeans ecsq", kEcsqBeatsInt6, {}});
  for (const char* fraction : {"0.01", "0.03", "0.05"}) {
    std::string spec = std::string("prune:") + fraction + "+int6";
    all.push_back({spec, "prune+int6", spec, {}});
  }
  for (int rank : {16, 32, 64, 128, 256}) {
    std::string spec = "lowrank:rank=" + std::to_string(rank) + "+int8";
    all.push_back({"tok_emb " + spec, "tok_emb lowrank+int8 (rest int6)", "int6", {"^tok_emb\\.weight$=" + spec}});
  }

  for (const auto& spec : ecsq_sweep_specs()) all.push_back({spec, "ecsq shared step", spec, {}});
  if (calibrated)
    for (const auto& spec : gptq_sweep_specs())
      all.push_back({spec, spec.starts_with("gptq+ecsq") ? "gptq ecsq shared step" : "gptq int-N std", spec, {}});

  std::vector<SweepPoint> known;
  for (auto& point : all) {
    try {
      (void)Plan(point.codec, point.rules);  // validates every spec
      known.push_back(std::move(point));
    } catch (const InputError& e) {
      skipped.push_back(point.label + ": " + e.what());
    }
  }
  return known;
}

SweepPoint sweep_point(const std::string& spec) {
  static const std::regex number("[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?");
  return {spec, std::regex_replace(spec, number, "N"), spec, {}};
}

std::string tensor_class(const std::string& name) {
  static const std::regex block_prefix("^blocks\\.[0-9]+\\."), weight_suffix("\\.weight$");
  return std::regex_replace(std::regex_replace(name, block_prefix, ""), weight_suffix, "");
}

}  // namespace pgolf

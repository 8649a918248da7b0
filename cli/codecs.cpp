// pgolf codecs: the tensor codec table, as llama-quantize lists its types; given a checkpoint,
// every example measured on its matrices: bits per parameter as stored (each stream through the
// byte codec `auto` as the artifact groups it) and the relative squared error, so a user sees what
// each costs before choosing.
#include <cstdio>
#include <optional>
#include <regex>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "codecs/byte_codec.h"
#include "core/error.h"
#include "plan/plan.h"
#include "quant/tensor_codec.h"

namespace pgolf::cli {

namespace {

struct Measured {
  double bits_per_parameter = 0, relative_mse = 0;
};

// The example fitted and encoded on every tensor, then decoded: stored bits per parameter (each
// stream alone through the byte codec; an artifact compresses a group of them, a little smaller)
// and sum (w − ŵ)² / sum w² over all of them together.
Measured measure(const std::string& spec, const std::vector<FitTensor>& tensors, const ByteCodec& compressor) {
  const FittedCodecs codecs = fit_tensor_codec(spec, tensors);
  double bits = 0, error = 0, energy = 0, parameters = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const FitTensor& t = tensors[i];
    const std::vector<Stream> streams = codecs[i]->encode(t.values, t.shape);
    for (const Stream& s : streams)
      bits += 8.0 * static_cast<double>(make_byte_codec(group_codec_spec(s, compressor))->encode(s.bytes).size());
    const std::vector<float> decoded = decode_streams(*codecs[i], streams, t.shape);
    for (size_t j = 0; j < decoded.size(); ++j) {
      const double w = t.values[j], d = w - decoded[j];
      error += d * d, energy += w * w;
    }
    parameters += static_cast<double>(t.values.size());
  }
  return {bits / parameters, energy > 0 ? error / energy : 0};
}

}  // namespace

int codecs_main(int argc, char** argv) {
  cxxopts::Options options("pgolf codecs", "The tensor codecs (--codec, --rule, --candidates) and their examples; given a "
                                           "checkpoint, each example measured on its matrices.\n"
                                           "  pgolf codecs\n"
                                           "  pgolf codecs samples/base9 --tensors 'blocks\\.4\\.'");
  options.positional_help("[CHECKPOINT]").show_positional_help();
  options.add_options()
      ("tensors", "measure on every tensor the default plan quantizes whose name matches this regex (default: the "
                  "first such tensor; each example takes about a second per million parameters)",
       cxxopts::value<std::string>())
      ("inputs", "checkpoint files, a folder or one shard of a set", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"inputs"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("inputs") > 0 || args.count("tensors") == 0, "--tensors measures on a checkpoint: give one");

  std::vector<FitTensor> tensors;
  std::vector<std::vector<float>> values;
  std::optional<Checkpoint> checkpoint;
  if (args.count("inputs")) {
    checkpoint = Checkpoint::open(args["inputs"].as<std::vector<std::string>>());
    const bool chosen = args.count("tensors") > 0;
    std::regex pattern;
    try {
      pattern = std::regex(chosen ? args["tensors"].as<std::string>() : "", std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw InputError(std::string("--tensors: bad regex: ") + e.what());
    }
    const Plan plan("int6", {});
    for (const auto& ref : checkpoint->tensors()) {
      if (plan.codec_for(ref.name, ref.dtype, ref.shape) != "int6" || !std::regex_search(ref.name, pattern)) continue;
      values.push_back(ref.to_floats());
      tensors.push_back({ref.name, {}, TensorShape{ref.shape}, nullptr});
      if (!chosen) break;
    }
    require(!tensors.empty(), "no tensor the default plan quantizes matches --tensors");
    int64_t parameters = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      tensors[i].values = values[i];
      parameters += static_cast<int64_t>(values[i].size());
    }
    std::printf("measured on %zu tensor%s (%s%s), %s parameters: bits/parameter as stored (byte codec auto), "
                "relative squared error\n\n", tensors.size(), tensors.size() == 1 ? "" : "s", tensors[0].name.c_str(),
                tensors.size() == 1 ? "" : ", ...", with_commas(static_cast<uint64_t>(parameters)).c_str());
  }
  const std::unique_ptr<ByteCodec> compressor = make_byte_codec("auto");
  for (const auto& row : tensor_codec_table()) {
    std::printf("%s\n", row.usage.c_str());
    for (const auto& example : row.examples) {
      if (tensors.empty()) {
        std::printf("  %s\n", example.c_str());
        continue;
      }
      try {
        const Measured m = measure(example, tensors, *compressor);
        std::printf("  %-44s %7.3f bits  rel_mse %.3e\n", example.c_str(), m.bits_per_parameter, m.relative_mse);
      } catch (const InputError& e) {  // a codec that needs what this command does not give (calibration)
        std::printf("  %-44s (%s)\n", example.c_str(), e.what());
      }
    }
  }
  return 0;
}

}  // namespace pgolf::cli

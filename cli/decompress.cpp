// pgolf decompress: artifact in, safetensors (or a torch.save state dict) out, holding exactly the
// codec's dequantized values.
#include <cstdio>
#include <cstring>
#include <map>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/torch_checkpoint.h"
#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "core/error.h"
#include "quant/tensor_codec.h"

namespace pgolf::cli {

namespace {

// The checkpoint's own float type where it holds every decoded value exactly, else fp32 (exact
// for every codec): what --dtype auto writes.
DType exact_type(DType original, std::span<const float> values) {
  if (original != DType::F16 && original != DType::BF16) return DType::F32;
  const std::vector<uint8_t> narrowed = from_float(original, values);
  std::vector<float> back(values.size());
  to_float(original, narrowed, back);
  return std::memcmp(back.data(), values.data(), values.size() * sizeof(float)) == 0 ? original : DType::F32;
}

}  // namespace

int decompress_main(int argc, char** argv) {
  cxxopts::Options options("pgolf decompress", "Decode a .pgz artifact back to safetensors or a torch.save state dict.\n"
                                               "  pgolf decompress base9.pgz -o base9-int6.safetensors\n"
                                               "  pgolf decompress base9.pgz -o base9-int6.pt --format pt --dtype bf16");
  options.positional_help("IN.pgz").show_positional_help();
  options.add_options()
      ("o,output,out", "file to write (or --out)", cxxopts::value<std::string>())
      ("format", "safetensors, or pt: a torch.save file of an OrderedDict of tensors that "
                 "torch.load(weights_only=True) reads", cxxopts::value<std::string>()->default_value("safetensors"))
      ("dtype", "float output type: auto (each tensor in its checkpoint's dtype where that holds the decoded values "
                "exactly, else fp32: exact, and a lossless artifact comes back as it went in), fp32 (exact for every "
                "codec), bf16 or fp16 (rounded)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("force,overwrite", "replace an existing output (or --overwrite)")
      ("input", "the artifact", cxxopts::value<std::string>());
  options.parse_positional({"input"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("input") > 0, "no input artifact given (pgolf decompress --help)");
  require(args.count("output") > 0, "no output given: pass -o OUT.safetensors");
  const std::string format = args["format"].as<std::string>();
  require(format == "safetensors" || format == "pt", "--format must be safetensors or pt (got '" + format + "')");
  const std::string dtype_text = args["dtype"].as<std::string>();
  const std::map<std::string, DType> types = {{"fp32", DType::F32}, {"bf16", DType::BF16}, {"fp16", DType::F16}};
  require(dtype_text == "auto" || types.contains(dtype_text),
          "--dtype must be auto, fp32, bf16 or fp16 (got '" + dtype_text + "')");

  const std::string output = args["output"].as<std::string>();
  const bool force = args.count("force") > 0;
  check_output(output, {args["input"].as<std::string>()}, force);
  auto decoded = decode_artifact_file(args["input"].as<std::string>());
  std::vector<TensorData> tensors;
  uint64_t bytes = 0;
  std::map<std::string, int> written;  // tensors per output dtype
  for (auto& t : decoded.tensors) {
    const bool raw = t.codec == kRawSpec;  // stored as it was: keeps its dtype
    const DType type = raw ? t.dtype : dtype_text == "auto" ? exact_type(t.dtype, t.values) : types.at(dtype_text);
    TensorData d{t.name, type, t.shape, raw ? std::move(t.raw) : from_float(type, t.values)};
    bytes += d.bytes.size();
    ++written[std::string(dtype_name(type))];
    tensors.push_back(std::move(d));
  }
  std::string counts;
  for (const auto& [name, count] : written) counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " " + name;
  if (format == "pt") write_torch(output, tensors, force);
  else write_safetensors(output, tensors, decoded.manifest.metadata, force);
  std::printf("wrote %s: %zu tensors, %s B (%s)\n", output.c_str(), tensors.size(), with_commas(bytes).c_str(),
              counts.c_str());
  return 0;
}

}  // namespace pgolf::cli

// pgolf decompress: artifact in, safetensors (or a torch.save state dict) out, holding exactly the
// codec's dequantized values.
#include <cstdio>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/torch_checkpoint.h"
#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "core/error.h"
#include "quant/tensor_codec.h"

namespace pgolf::cli {

int decompress_main(int argc, char** argv) {
  cxxopts::Options options("pgolf decompress", "Decode a .pgz artifact back to safetensors or a torch.save state dict.\n"
                                               "  pgolf decompress base9.pgz -o base9-int6.safetensors\n"
                                               "  pgolf decompress base9.pgz -o base9-int6.pt --format pt --dtype bf16");
  options.positional_help("IN.pgz").show_positional_help();
  options.add_options()
      ("o,output,out", "file to write (or --out)", cxxopts::value<std::string>())
      ("format", "safetensors, or pt: a torch.save file of an OrderedDict of tensors that "
                 "torch.load(weights_only=True) reads", cxxopts::value<std::string>()->default_value("safetensors"))
      ("dtype", "float output type: fp32 (exact for every codec), bf16 or fp16 (rounded)",
       cxxopts::value<std::string>()->default_value("fp32"))
      ("force,overwrite", "replace an existing output (or --overwrite)")
      ("input", "the artifact", cxxopts::value<std::string>());
  options.parse_positional({"input"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("input") > 0, "no input artifact given (pgolf decompress --help)");
  require(args.count("output") > 0, "no output given: pass -o OUT.safetensors");
  const std::string format = args["format"].as<std::string>();
  require(format == "safetensors" || format == "pt", "--format must be safetensors or pt (got '" + format + "')");
  std::string dtype_text = args["dtype"].as<std::string>();
  DType out_type = dtype_text == "fp32" ? DType::F32 : dtype_text == "bf16" ? DType::BF16 : DType::F16;
  require(dtype_text == "fp32" || dtype_text == "bf16" || dtype_text == "fp16",
          "--dtype must be fp32, bf16 or fp16 (got '" + dtype_text + "')");

  const std::string output = args["output"].as<std::string>();
  const bool force = args.count("force") > 0;
  check_output(output, {args["input"].as<std::string>()}, force);
  auto decoded = decode_artifact_file(args["input"].as<std::string>());
  std::vector<TensorData> tensors;
  uint64_t bytes = 0;
  for (auto& t : decoded.tensors) {
    bool raw = t.codec == kRawSpec;  // stored as it was: keeps its dtype
    TensorData d{t.name, raw ? t.dtype : out_type, t.shape, raw ? std::move(t.raw) : from_float(out_type, t.values)};
    bytes += d.bytes.size();
    tensors.push_back(std::move(d));
  }
  if (format == "pt") write_torch(output, tensors, force);
  else write_safetensors(output, tensors, decoded.manifest.metadata, force);
  std::printf("wrote %s: %zu tensors, %s B of %s\n", output.c_str(), tensors.size(), with_commas(bytes).c_str(),
              dtype_text.c_str());
  return 0;
}

}  // namespace pgolf::cli

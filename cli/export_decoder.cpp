// pgolf export-decoder: writes the Python decoder (python/pgolf_decode.py, built into the binary)
// that a Parameter Golf submission imports to read an artifact of `compress --profile python`, and
// says what it costs as the records count code: xz-compressed, base85, inside an exec wrapper.
#include <cstdio>

#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "codecs/byte_codec.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "python_decoder.h"

namespace pgolf::cli {

namespace {

// Python's base64.b85encode: each 4 bytes (big-endian) as 5 digits of this alphabet, a last
// partial group of k bytes as its first k + 1 digits.
std::string base85(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
  std::string out;
  for (size_t at = 0; at < bytes.size(); at += 4) {
    const size_t k = std::min<size_t>(4, bytes.size() - at);
    uint32_t word = 0;
    for (size_t i = 0; i < 4; ++i) word = word << 8 | (i < k ? bytes[at + i] : 0u);
    char digits[5];
    for (int i = 4; i >= 0; --i, word /= 85) digits[i] = kDigits[word % 85];
    out.append(digits, k + 1);
  }
  return out;
}

// Python source as Parameter Golf records ship counted code: xz, base85, inside an exec wrapper.
std::string packed_python(std::string_view source) {
  const auto xz = make_byte_codec("xz:9")->encode({reinterpret_cast<const uint8_t*>(source.data()), source.size()});
  return "import lzma,base64;exec(lzma.decompress(base64.b85decode('" + base85(xz) + "')))\n";
}

}  // namespace

int export_decoder_main(int argc, char** argv) {
  cxxopts::Options options("pgolf export-decoder",
                           "Write the Python decoder of `compress --profile python` artifacts: one file, numpy and the\n"
                           "standard library only, entry point decode(path) -> {name: numpy array}.\n"
                           "  pgolf export-decoder -o pgolf_decode.py\n"
                           "  pgolf export-decoder -o pgolf_decode.py --packed   (the form Parameter Golf counts)");
  options.add_options()
      ("o,output,out", "file to write (.py) (or --out)", cxxopts::value<std::string>())
      ("packed", "write it xz-compressed and base85-encoded inside an exec wrapper, as records ship counted code")
      ("force,overwrite", "replace an existing output (or --overwrite)");
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("output") > 0, "no output given: pass -o pgolf_decode.py");
  const std::string output = args["output"].as<std::string>();
  check_output(output, {}, args.count("force") > 0);
  const std::string packed = packed_python(kPythonDecoder);
  const std::string_view text = args.count("packed") ? std::string_view(packed) : kPythonDecoder;
  write_file_atomic(output, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, args.count("force") > 0);
  std::printf("wrote %s: %s B; as Parameter Golf records count code (xz, base85, exec wrapper): %s B\n", output.c_str(),
              with_commas(text.size()).c_str(), with_commas(packed.size()).c_str());
  return 0;
}

}  // namespace pgolf::cli

// Arbitrary float tensors through every tensor codec. encode() may refuse (InputError: NaN/Inf,
// values out of the codec's range); what it accepts must decode to as many finite values (pass-
// through codecs keep NaN and Inf), within the codec's bound: exact for fp32, the rounding of
// bf16/fp16, and for every lossy codec no value beyond 8x the tensor's Frobenius norm (rounding,
// clipping, centroids, pruning, low-rank projections and a correction on a base codec stay within it).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "fuzz/codec_specs.h"
#include "fuzz/fuzz_support.h"

namespace {
[[noreturn]] void fail(const pgolf::TensorCodec& codec, size_t i, float x, float y, const char* why) {
  std::fprintf(stderr, "%s: value %zu: %g decodes to %g (%s)\n", codec.spec().c_str(), i, x, y, why);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& codecs = pgolf::fuzz::tensor_codecs();
  pgolf::fuzz::InputReader in(data, size);
  const auto& codec = *codecs[in.u8() % codecs.size()];
  int64_t rows = 1 + in.u8() % 16;
  auto bytes = in.rest();
  int64_t cols = static_cast<int64_t>(bytes.size() / 4) / rows;
  if (cols == 0) return 0;
  std::vector<float> x(static_cast<size_t>(rows * cols));
  std::memcpy(x.data(), bytes.data(), x.size() * 4);
  pgolf::TensorShape shape{{rows, cols}};

  std::vector<pgolf::Stream> streams;
  try {
    streams = codec.encode(x, shape);
  } catch (const pgolf::InputError&) {
    return 0;
  }
  auto y = pgolf::decode_streams(codec, streams, shape);
  if (y.size() != x.size()) fail(codec, 0, x[0], NAN, "wrong count");

  double norm = 0;
  for (float v : x) norm += double{v} * v;
  norm = std::sqrt(norm);
  std::string spec = codec.spec();
  double relative = spec == "fp32" ? 0 : spec == "bf16" ? 1.0 / 256 : spec == "fp16" ? 1.0 / 2048 : -1;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(y[i]) && !(codec.is_passthrough() && !std::isfinite(x[i])))  // pass-through keeps NaN/Inf
      fail(codec, i, x[i], y[i], "not finite");
    if (relative >= 0) {
      // Subnormals round to a fixed step: 2^-24 in fp16, 2^-133 in bf16.
      double tolerance = spec == "fp32" ? 0 : relative * std::fabs(x[i]) + std::ldexp(1.0, spec == "fp16" ? -25 : -134);
      if (std::fabs(double{y[i]} - x[i]) > tolerance) fail(codec, i, x[i], y[i], "beyond the float rounding");
    } else if (std::fabs(y[i]) > 8 * norm + 1e-30) {
      fail(codec, i, x[i], y[i], "beyond 8x the tensor's norm");
    }
  }
  return 0;
}

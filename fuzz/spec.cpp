// Spec strings from the command line: the parser and every registry that builds from a spec
// (byte codecs and chains, tensor codecs and pipelines, plan rules). A codec built from a spec
// must rebuild from its canonical spec.
#include <cstdio>

#include "codecs/byte_codec.h"
#include "core/spec.h"
#include "fuzz/fuzz_support.h"
#include "plan/plan.h"
#include "quant/tensor_codec.h"

namespace {
void require_same(const std::string& a, const std::string& b) {
  if (a == b) return;
  std::fprintf(stderr, "canonical spec '%s' rebuilds as '%s'\n", a.c_str(), b.c_str());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view spec(reinterpret_cast<const char*>(data), size);
  using pgolf::fuzz::accept_input_error;
  accept_input_error([&] {
    for (const auto& stage : pgolf::parse_spec(spec)) (void)stage.to_string();
  });
  accept_input_error([&] {
    auto codec = pgolf::make_byte_codec(spec);
    require_same(codec->spec(), pgolf::make_byte_codec(codec->spec())->spec());
  });
  accept_input_error([&] {
    auto codec = pgolf::make_tensor_codec(spec);
    require_same(codec->spec(), pgolf::make_tensor_codec(codec->spec())->spec());
  });
  // A plan rule's regex is the user's own; libstdc++'s regex recurses per character, so only
  // short rules are tried (a long one can exhaust the stack: the user's own command line, not a file).
  if (size <= 64) accept_input_error([&] { pgolf::Plan("int6", {std::string(spec)}); });
  return 0;
}

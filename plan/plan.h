// The plan: which codec each tensor gets. Parameter Golf's defaults (small and control
// tensors stay float), overridden by --rule REGEX=SPEC (first match wins), like
// llama-quantize's --tensor-type.
#pragma once
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "quant/tensor_codec.h"

namespace pgolf {

class Checkpoint;

// The default spec that stores every tensor exactly: raw bytes for all (the byte codec does the work).
inline constexpr const char* kLosslessSpec = "lossless";

struct PlanRule {
  std::string pattern;  // ECMAScript regex, searched in the tensor name
  std::string spec;
  std::regex regex;
};

class Plan {
 public:
  // default_spec: the codec for large 2-D float tensors ("int6"), or "lossless" for raw bytes of
  // every tensor no rule matches. Rules are "REGEX=SPEC".
  // Throws InputError for a malformed rule or regex, or an unknown codec.
  Plan(std::string default_spec, const std::vector<std::string>& rules);

  // Parameter Golf's rules, after the user's: non-float -> raw; control tensors (attn_scale,
  // mlp_scale, resid_mix, q_gain, skip_weight) -> fp32; a large BigramHash table -> int8; at most
  // 65,536 elements or not 2-D -> fp16; everything else -> the default spec.
  std::string codec_for(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const;
  // codec_for every tensor, in the checkpoint's order: the plan as data, as encode_checkpoint takes it.
  std::vector<std::string> specs_for(const Checkpoint& checkpoint) const;
  // The user's rules ("REGEX=SPEC") whose regex finds no tensor of the checkpoint: worth a warning.
  std::vector<std::string> unmatched_rules(const Checkpoint& checkpoint) const;

  static constexpr int64_t kSmallTensorElements = 65536;
  static constexpr const char* kBigramTableName = "bigram.embed.weight";

 private:
  std::string default_spec_;
  std::vector<PlanRule> rules_;
};

bool is_control_tensor(const std::string& name);

// A plan written down, one spec per tensor: {"pgolf_plan": 1, "tensors": {"name": "spec", ...}}, as
// compress --save-plan writes it (whatever chose it: rules or --auto) and --plan reads it back, so a
// plan can be edited and replayed. Reading gives the specs in the checkpoint's order; InputError
// names a tensor the file lacks or the checkpoint lacks, a bad spec, or malformed JSON.
std::vector<std::string> read_plan_file(const std::string& path, const Checkpoint& checkpoint);
void write_plan_file(const std::string& path, const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                     bool overwrite);

}  // namespace pgolf

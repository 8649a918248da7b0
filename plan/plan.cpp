#include "plan/plan.h"

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "quant/tensor_codec.h"

namespace pgolf {

namespace {
constexpr const char* kControlPatterns[] = {"attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight"};
}

bool is_control_tensor(const std::string& name) {
  for (const char* p : kControlPatterns)
    if (name.find(p) != std::string::npos) return true;
  return false;
}

Plan::Plan(std::string default_spec, const std::vector<std::string>& rules) : default_spec_(std::move(default_spec)) {
  if (default_spec_ != kLosslessSpec) make_tensor_codec(default_spec_);  // validates
  for (const auto& text : rules) {
    size_t eq = text.rfind('=');
    // a spec may contain '=' (int6:clip=mse), so split at the first '=' that leaves a valid codec
    PlanRule rule;
    bool parsed = false;
    for (size_t pos = text.find('='); pos != std::string::npos && !parsed; pos = text.find('=', pos + 1)) {
      std::string spec = text.substr(pos + 1);
      if (pos == 0 || spec.empty()) continue;
      try {
        if (spec != kRawSpec) make_tensor_codec(spec);
        rule.pattern = text.substr(0, pos);
        rule.spec = spec;
        parsed = true;
      } catch (const InputError&) {
        if (pos == eq) throw;  // the last candidate: report why its codec is bad
      }
    }
    require(parsed, "rule '" + text + "' must be REGEX=SPEC, e.g. 'mlp\\.=int5'");
    // libstdc++'s regex compiler reads a back-reference or a {n,m} count into a long without an
    // overflow check (undefined behaviour; found by fuzz/spec.cpp); no tensor name needs such numbers.
    size_t digits = 0;
    for (char c : rule.pattern) {
      digits = std::isdigit(static_cast<unsigned char>(c)) ? digits + 1 : 0;
      require(digits <= 6, "rule '" + text + "': a number in its regex has more than 6 digits");
    }
    try {
      rule.regex = std::regex(rule.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw InputError("rule '" + text + "': bad regex: " + e.what());
    }
    rules_.push_back(std::move(rule));
  }
}

std::string Plan::codec_for(const std::string& name, DType dtype, const std::vector<int64_t>& shape) const {
  if (!dtype_is_float(dtype)) return kRawSpec;
  for (const auto& rule : rules_)
    if (std::regex_search(name, rule.regex)) return rule.spec;
  if (default_spec_ == kLosslessSpec) return kRawSpec;
  if (is_control_tensor(name)) return "fp32";
  // BigramHash's table is read by lookup: no calibration Hessian describes it (GPTQ would have
  // nothing to work with), and the records store it int8 per row (M4, M5).
  if (name == kBigramTableName && shape.size() == 2 && element_count(shape) > kSmallTensorElements) return "int8";
  if (shape.size() != 2 || element_count(shape) <= kSmallTensorElements) return "fp16";
  return default_spec_;
}

std::vector<std::string> Plan::specs_for(const Checkpoint& checkpoint) const {
  std::vector<std::string> specs;
  for (const auto& ref : checkpoint.tensors()) specs.push_back(codec_for(ref.name, ref.dtype, ref.shape));
  return specs;
}

std::vector<std::string> Plan::unmatched_rules(const Checkpoint& checkpoint) const {
  std::vector<std::string> unmatched;
  for (const PlanRule& rule : rules_) {
    bool found = false;
    for (const auto& ref : checkpoint.tensors()) found = found || std::regex_search(ref.name, rule.regex);
    if (!found) unmatched.push_back(rule.pattern + "=" + rule.spec);
  }
  return unmatched;
}

std::vector<std::string> read_plan_file(const std::string& path, const Checkpoint& checkpoint) {
  std::ifstream in(path);
  require(in.good(), path + ": cannot read the plan");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  require(!j.is_discarded() && j.is_object() && j.value("pgolf_plan", 0) == 1 && j.contains("tensors") &&
              j["tensors"].is_object(),
          path + ": not a plan (JSON {\"pgolf_plan\": 1, \"tensors\": {\"name\": \"spec\", ...}})");
  const auto& tensors = j["tensors"];
  for (const auto& [name, spec] : tensors.items()) {
    require(checkpoint.find(name) != nullptr, path + ": tensor '" + name + "' is not in the checkpoint");
    require(spec.is_string(), path + ": tensor '" + name + "': the spec is not a string");
  }
  std::vector<std::string> specs;
  for (const auto& ref : checkpoint.tensors()) {
    require(tensors.contains(ref.name), path + ": the plan has no spec for tensor '" + ref.name + "'");
    const std::string spec = tensors[ref.name].get<std::string>();
    if (spec != kRawSpec) {
      try {
        make_tensor_codec(spec);
      } catch (const InputError& e) {
        throw InputError(path + ": tensor '" + ref.name + "': " + e.what());
      }
    }
    specs.push_back(spec);
  }
  return specs;
}

void write_plan_file(const std::string& path, const Checkpoint& checkpoint, const std::vector<std::string>& specs,
                     bool overwrite) {
  nlohmann::ordered_json tensors = nlohmann::ordered_json::object();
  for (size_t i = 0; i < specs.size(); ++i) tensors[checkpoint.tensors()[i].name] = specs[i];
  const std::string text = nlohmann::ordered_json{{"pgolf_plan", 1}, {"tensors", tensors}}.dump(2) + "\n";
  write_file_atomic(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}, overwrite);
}

}  // namespace pgolf

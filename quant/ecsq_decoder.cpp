// The ECSQ decoder: int8 or 16-bit symbols times the tensor's (or the row's) fp32 step.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

constexpr const char* kTargetKeys[] = {"step", "relmse", "bits", "totalrelmse"};
constexpr const char* kUsage = "ecsq:relmse=R|bits=B|step=S|totalrelmse=T[,scope=tensor|row]";

class EcsqDecoder final : public TensorDecoder {
 public:
  explicit EcsqDecoder(EcsqRule rule) : rule_(rule) {}
  size_t stream_count() const override { return 2; }
  bool keeps_zeros() const override { return true; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    const std::string spec = rule_.spec();
    size_t n = static_cast<size_t>(shape.numel());
    size_t rows = rule_.per_row ? static_cast<size_t>(shape.rows()) : 1;
    require(streams.size() == 2 && (streams[0].size() == n || streams[0].size() == 2 * n) && streams[1].size() == 4 * rows,
            spec + ": stream sizes do not match the tensor's shape");
    bool wide = streams[0].size() == 2 * n && n > 0;
    std::vector<float> steps(rows);
    std::memcpy(steps.data(), streams[1].data(), 4 * rows);
    for (size_t r = 0; r < rows; ++r)
      if (!std::isfinite(steps[r])) throw InputError(spec + ": non-finite step in row " + std::to_string(r));
    std::vector<float> out(n);
    size_t cols = rows == 0 ? 0 : n / rows;
    const uint8_t* s = streams[0].data();
    for (size_t i = 0; i < n; ++i) {
      int32_t q = wide ? static_cast<int16_t>(static_cast<uint16_t>(s[2 * i] | s[2 * i + 1] << 8)) : static_cast<int8_t>(s[i]);
      out[i] = static_cast<float>(q) * steps[i / cols];
    }
    return out;
  }

 private:
  EcsqRule rule_;
};

}  // namespace

std::string EcsqRule::spec() const {
  char buf[96];
  std::snprintf(buf, sizeof buf, "ecsq:%s=%.9g%s", kTargetKeys[static_cast<int>(target)], value, per_row ? ",scope=row" : "");
  return buf;
}

EcsqRule ecsq_rule(const SpecStage& stage) {
  EcsqRule rule;
  int targets = 0;
  for (const auto& [key, value] : stage.params) {
    if (key == "scope") {
      require(value == "tensor" || value == "row", "ecsq: scope is tensor or row (got '" + value + "')");
      rule.per_row = value == "row";
      continue;
    }
    auto it = std::find(std::begin(kTargetKeys), std::end(kTargetKeys), key);
    require(it != std::end(kTargetKeys), "ecsq: unknown parameter '" + (key.empty() ? value : key) + "' (" + kUsage + ")");
    rule.target = static_cast<EcsqTarget>(it - std::begin(kTargetKeys));
    rule.value = parse_number(value, "ecsq " + key);
    ++targets;
  }
  require(targets == 1, std::string("ecsq takes exactly one of relmse, bits, step, totalrelmse (") + kUsage + ")");
  switch (rule.target) {
    case EcsqTarget::Step: require(rule.value > 0 && std::isfinite(rule.value), "ecsq: step must be a finite number > 0"); break;
    case EcsqTarget::RelMse:
    case EcsqTarget::TotalRelMse: require(rule.value > 0 && rule.value < 1, "ecsq: a relative MSE target must be in (0, 1)"); break;
    case EcsqTarget::Bits: require(rule.value > 0 && rule.value <= 16, "ecsq: bits per symbol must be in (0, 16]"); break;
  }
  require(!rule.per_row || rule.target == EcsqTarget::RelMse || rule.target == EcsqTarget::Bits,
          "ecsq: scope=row takes relmse or bits (a step or a total target is one per tensor)");
  return rule;
}


std::unique_ptr<TensorDecoder> make_ecsq_decoder(const SpecStage& stage) { return std::make_unique<EcsqDecoder>(ecsq_rule(stage)); }

}  // namespace pgolf

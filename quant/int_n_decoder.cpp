// The int-N decoder: one int8 symbol per value in ±qmax, one fp16 scale per row.
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

std::string IntNRule::spec() const {
  std::string s = "int" + std::to_string(bits);
  char buf[64];
  switch (clip) {
    case ClipMode::AbsMax: return s;
    case ClipMode::Quantile: std::snprintf(buf, sizeof buf, ":clip=quantile:%.10g", clip_param); return s + buf;
    case ClipMode::StdDev: std::snprintf(buf, sizeof buf, ":clip=std:%.10g", clip_param); return s + buf;
    case ClipMode::MseSearch: return s + ":clip=mse";
  }
  return s;
}

void dequantize_row(std::span<const int8_t> q, float scale, std::span<float> out) {
  for (size_t i = 0; i < q.size(); ++i) out[i] = static_cast<float>(q[i]) * scale;
}

namespace {

class IntNDecoder final : public TensorDecoder {
 public:
  explicit IntNDecoder(IntNRule rule) : rule_(rule) {}
  size_t stream_count() const override { return 2; }
  bool keeps_zeros() const override { return true; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    const std::string spec = rule_.spec();
    int64_t rows = shape.rows(), cols = shape.cols();
    require(streams.size() == 2 && streams[0].size() == static_cast<size_t>(shape.numel()) &&
                streams[1].size() == static_cast<size_t>(rows) * 2,
            spec + ": stream sizes do not match the tensor's shape");
    const auto* q = reinterpret_cast<const int8_t*>(streams[0].data());
    int qmax = rule_.qmax();
    for (int64_t i = 0; i < shape.numel(); ++i)
      if (q[i] < -qmax || q[i] > qmax) throw InputError(spec + ": symbol " + std::to_string(q[i]) + " out of range");
    std::vector<float> out(static_cast<size_t>(shape.numel()));
    for (int64_t r = 0; r < rows; ++r) {
      uint16_t s;
      std::memcpy(&s, streams[1].data() + 2 * r, 2);
      float scale = fp16_to_float(s);
      if (!std::isfinite(scale)) throw InputError(spec + ": non-finite scale in row " + std::to_string(r));
      dequantize_row({q + r * cols, static_cast<size_t>(cols)}, scale, {out.data() + r * cols, static_cast<size_t>(cols)});
    }
    return out;
  }

 private:
  IntNRule rule_;
};

}  // namespace

IntNRule int_n_rule(const SpecStage& stage) {
  std::string bits_text = stage.name.substr(3);
  long bits = parse_integer(bits_text, "int-N bit width");
  require(bits >= 2 && bits <= 8, "int-N takes N from 2 to 8 (got '" + stage.name + "')");
  IntNRule rule;
  rule.bits = static_cast<int>(bits);
  for (const auto& [key, value] : stage.params) {
    require(key == "clip", stage.name + ": unknown parameter '" + (key.empty() ? value : key) +
                               "' (accepted: clip=absmax|quantile:P|std:K|mse)");
    std::string_view v = value;
    if (v == "absmax") {
      rule.clip = ClipMode::AbsMax;
    } else if (v == "mse") {
      rule.clip = ClipMode::MseSearch;
    } else if (v.starts_with("quantile:")) {
      rule.clip = ClipMode::Quantile;
      rule.clip_param = parse_number(v.substr(9), "clip quantile");
      require(rule.clip_param > 0 && rule.clip_param <= 1, "clip quantile must be in (0, 1]");
    } else if (v.starts_with("std:")) {
      rule.clip = ClipMode::StdDev;
      rule.clip_param = parse_number(v.substr(4), "clip k·std");
      require(rule.clip_param > 0, "clip k·std needs k > 0");
    } else {
      throw InputError(stage.name + ": unknown clip '" + value + "' (accepted: absmax, quantile:P, std:K, mse)");
    }
  }
  return rule;
}


std::unique_ptr<TensorDecoder> make_int_n_decoder(const SpecStage& stage) { return std::make_unique<IntNDecoder>(int_n_rule(stage)); }

}  // namespace pgolf

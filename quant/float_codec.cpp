// Pass-through codecs: values stored as fp16, bf16 or fp32 (exact for inputs of that type).
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "quant/tensor_codec.h"
#include "quant/tensor_codec_registry.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class FloatCodec final : public TensorCodec {
 public:
  FloatCodec(std::string name, DType type) : name_(std::move(name)), type_(type) {}
  std::string spec() const override { return name_; }
  bool is_passthrough() const override { return true; }

  // Values are stored as they are, NaN and Inf included; a finite value that would round to Inf
  // (beyond 65504 in fp16) is refused rather than silently changed.
  std::vector<Stream> encode(std::span<const float> values, const TensorShape&) const override {
    std::vector<Stream> out;
    out.push_back({name_, from_float(type_, values), static_cast<int>(dtype_size(type_)), false, type_ == DType::BF16});
    std::vector<float> stored(values.size());
    to_float(type_, out[0].bytes, stored);
    for (size_t i = 0; i < values.size(); ++i) {
      if (std::isfinite(values[i]) && !std::isfinite(stored[i]))
        throw InputError(name_ + ": value " + std::to_string(values[i]) + " at index " + std::to_string(i) +
                         " is beyond " + name_ + "'s range (store it as fp32)");
    }
    return out;
  }

 private:
  std::string name_;
  DType type_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_float_codec(const SpecStage& stage) {
  return std::make_unique<FloatCodec>(stage.name, float_codec_type(stage));
}

}  // namespace pgolf

// The decoder of the pass-through codecs: values stored as fp16, bf16 or fp32.
#include "core/error.h"
#include "quant/tensor_decoder_registry.h"

namespace pgolf {

namespace {

class FloatDecoder final : public TensorDecoder {
 public:
  FloatDecoder(std::string name, DType type) : name_(std::move(name)), type_(type) {}
  size_t stream_count() const override { return 1; }
  bool keeps_zeros() const override { return true; }

  std::vector<float> decode(std::span<const std::span<const uint8_t>> streams, const TensorShape& shape) const override {
    size_t n = static_cast<size_t>(shape.numel());
    require(streams.size() == 1 && streams[0].size() == n * dtype_size(type_),
            name_ + ": stream size does not match the tensor's shape");
    std::vector<float> out(n);
    to_float(type_, streams[0], out);
    return out;
  }

 private:
  std::string name_;
  DType type_;
};

}  // namespace

DType float_codec_type(const SpecStage& stage) {
  require(stage.params.empty(), stage.name + " takes no parameters");
  return stage.name == "fp16" ? DType::F16 : stage.name == "bf16" ? DType::BF16 : DType::F32;
}

std::unique_ptr<TensorDecoder> make_float_decoder(const SpecStage& stage) {
  return std::make_unique<FloatDecoder>(stage.name, float_codec_type(stage));
}

}  // namespace pgolf

// "gptq[:order=act|natural,damp=D,block=B]+GRID": GPTQ's symbols on GRID, any per-element scalar
// grid codec (intN, ecsq). GRID fixes its scales from the weights first (its own fit step
// included: ecsq:totalrelmse's shared step); then quant/gptq.h chooses the symbols with the
// tensor's calibration Hessian, and GRID writes them. The artifact records GRID's spec: decoding
// is GRID's, unchanged. Encoding needs the fit step (a Hessian per tensor); decoding does not.
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "quant/gptq.h"
#include "quant/tensor_codec_registry.h"

namespace pgolf {

namespace {

constexpr const char* kUsage = "gptq[:order=act|natural,damp=D,block=B]+GRID, GRID an intN or ecsq codec";

class GptqCodec final : public TensorCodec {
 public:
  GptqCodec(GptqOptions options, std::shared_ptr<const TensorCodec> grid, const InputHessian* hessian = nullptr,
            const GptqEngine* engine = nullptr)
      : options_(options), grid_codec_(std::move(grid)), grid_(dynamic_cast<const ScalarGridCodec*>(grid_codec_.get())),
        hessian_(hessian), engine_(engine ? engine : &cpu_gptq_engine()) {
    require(grid_ != nullptr, "gptq rounds on a per-element scalar grid (intN, ecsq); '" + grid_codec_->spec() +
                                  "' is not one (" + kUsage + ")");
  }

  std::string spec() const override {
    std::string params;
    auto add = [&](const std::string& p) { params += (params.empty() ? ":" : ",") + p; };
    if (!options_.act_order) add("order=natural");
    if (options_.damp != GptqOptions{}.damp) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "damp=%.9g", options_.damp);
      add(buf);
    }
    if (options_.block != GptqOptions{}.block) add("block=" + std::to_string(options_.block));
    return "gptq" + params + "+" + grid_codec_->spec();
  }
  std::string decoder_spec() const override { return grid_codec_->decoder_spec(); }
  bool is_passthrough() const override { return false; }

  FittedCodecs fit(std::span<const FitTensor> tensors, const FitOptions& options) const override {
    FittedCodecs grids = grid_codec_->fit(tensors, options);
    FittedCodecs out;
    for (size_t i = 0; i < tensors.size(); ++i) {
      require(tensors[i].hessian != nullptr, "tensor '" + tensors[i].name +
                                                 "': gptq needs its calibration Hessian and has none: pass --calibration "
                                                 "H.safetensors from pgolf calibrate, which writes one per quantized matrix");
      out.push_back(std::make_shared<GptqCodec>(options_, grids[i], tensors[i].hessian, options.gptq));
    }
    return out;
  }

  std::vector<Stream> encode(std::span<const float> values, const TensorShape& shape) const override {
    require(hessian_ != nullptr, spec() + " needs calibration: give compress --calibration H.safetensors");
    require_finite(values, spec());
    ScalarGrid grid = grid_->grid(values, shape);
    return grid_->write(gptq_round(values, shape, *hessian_, grid, options_, *engine_), grid, shape);
  }

 private:
  GptqOptions options_;
  std::shared_ptr<const TensorCodec> grid_codec_;
  const ScalarGridCodec* grid_;      // grid_codec_, as a grid
  const InputHessian* hessian_;      // set by fit; lives as long as the calibration
  const GptqEngine* engine_;
};

}  // namespace

std::unique_ptr<TensorCodec> make_gptq_codec(const SpecStage& stage, std::unique_ptr<TensorCodec> inner) {
  GptqOptions options;
  for (const auto& [key, value] : stage.params) {
    if (key == "order") {
      require(value == "act" || value == "natural", std::string("gptq: order is act or natural (") + kUsage + ")");
      options.act_order = value == "act";
    } else if (key == "damp") {
      options.damp = parse_number(value, "gptq damp");
      require(options.damp >= 0 && std::isfinite(options.damp), "gptq: damp must be a finite number >= 0");
    } else if (key == "block") {
      options.block = parse_integer(value, "gptq block");
      require(options.block > 0, "gptq: block must be > 0");
    } else {
      throw InputError("gptq: unknown parameter '" + (key.empty() ? value : key) + "' (" + kUsage + ")");
    }
  }
  return std::make_unique<GptqCodec>(options, std::move(inner));
}

}  // namespace pgolf

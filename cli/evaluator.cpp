#include "cli/evaluator.h"

#include "core/error.h"

#ifdef PGOLF_HAVE_CUDA
#include "kernels/cuda_eval.h"
#endif

namespace pgolf::cli {

std::string choose_device(const std::string& requested) {
  require(requested == "auto" || requested == "cpu" || requested == "cuda",
          "--device must be auto, cpu or cuda, got '" + requested + "'");
#ifdef PGOLF_HAVE_CUDA
  const bool gpu = cuda_available();
  const std::string missing = "no CUDA GPU found";
#else
  const bool gpu = false;
  const std::string missing = "this pgolf was built without CUDA";
#endif
  if (requested == "auto") return gpu ? "cuda" : "cpu";
  require(requested == "cpu" || gpu, "--device cuda: " + missing);
  return requested;
}

std::string describe_device(const std::string& device, int threads) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return "cuda (" + cuda_device_name() + ")";
#endif
  (void)device;
  return "cpu, " + std::to_string(threads) + " threads";
}

Model<float> evaluation_model(const std::map<std::string, FloatTensor>& tensors, const Tokenizer& tokenizer) {
  const ModelConfig config = ModelConfig::from_tensors(tensors);
  require(tokenizer.vocab_size() == config.vocab, tokenizer.path() + ": tokenizer vocab " +
                                                      std::to_string(tokenizer.vocab_size()) + " != model vocab " +
                                                      std::to_string(config.vocab));
  return Model<float>(config, params_from_tensors<float>(config, tensors));
}

EvalResult evaluate_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                       const ByteTable& bytes, const EvalOptions& options) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return evaluate_cuda(model, tokens, bytes, options);
#endif
  (void)device;
  return evaluate(model, tokens, bytes, options);
}

}  // namespace pgolf::cli

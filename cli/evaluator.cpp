#include "cli/evaluator.h"

#include <optional>

#include "core/error.h"

#ifdef PGOLF_HAVE_CUDA
#include "gpu/cuda_eval.h"
#include "gpu/cuda_gptq.h"
#include "gpu/cuda_train.h"
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

const GptqEngine* gptq_engine_on(const std::string& device) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return &cuda_gptq_engine();
#endif
  (void)device;
  return nullptr;
}

std::string describe_device(const std::string& device, int threads) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return "cuda (" + cuda_device_name() + ")";
#endif
  (void)device;
  return "cpu, " + std::to_string(threads) + " threads";
}

Model<float> model_of(const std::map<std::string, FloatTensor>& tensors, const RecordedSettings& recorded) {
  const ModelConfig config = with_recorded(ModelConfig::from_tensors(tensors), recorded);
  return Model<float>(config, params_from_tensors<float>(config, tensors));
}

Model<float> evaluation_model(const std::map<std::string, FloatTensor>& tensors, const RecordedSettings& recorded,
                              const Tokenizer& tokenizer) {
  Model<float> model = model_of(tensors, recorded);
  require(tokenizer.vocab_size() == model.config().vocab, tokenizer.path() + ": tokenizer vocab " +
                                                              std::to_string(tokenizer.vocab_size()) +
                                                              " != model vocab " +
                                                              std::to_string(model.config().vocab));
  return model;
}

EvalResult evaluate_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                       const ByteTable& bytes, const EvalOptions& options, Precision precision) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return evaluate_cuda(model, tokens, bytes, options, precision);
#endif
  (void)device, (void)precision;
  return evaluate(model, tokens, bytes, options);
}

EvalResult evaluate_ttt_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                           const ByteTable& bytes, EvalOptions options, const TttSgdOptions& ttt, Precision precision) {
  options.adapt_chunk = ttt.chunk_tokens;
  auto adapter = [&](TttSgd& sgd) {
    return [&sgd](int64_t chunk, int64_t chunks, std::span<const uint16_t> chunk_tokens) {
      sgd.adapt(chunk, chunks, chunk_tokens);
    };
  };
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") {  // the trainer's forward scores, its backward and an SGD step adapt
    CudaTrainer trainer = inference_trainer(model, options.seq_len, ttt.batch_sequences, precision);
    TttSgd sgd(trainer, ttt, model.config().layers, options.seq_len);
    return evaluate_windows(
        tokens, bytes, model.config().vocab, options, trainer.windows_per_call(),
        [&](std::span<const TokenWindow> windows, size_t scored) { return trainer.token_losses(windows, scored); },
        adapter(sgd));
  }
#endif
  (void)device, (void)precision;
  Model<float> adapted = model;
  const std::unique_ptr<TttEngine> engine = make_cpu_ttt_engine(adapted, options.threads);
  TttSgd sgd(*engine, ttt, model.config().layers, options.seq_len);
  return evaluate_windows(
      tokens, bytes, model.config().vocab, options, 4 * static_cast<size_t>(std::max(options.threads, 1)),
      [&](std::span<const TokenWindow> windows, size_t scored) {
        return last_targets(adapted.token_losses(windows, options.threads), windows.size(), scored);
      },
      adapter(sgd));
}

EvalResult evaluate_lora_ttt_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                                const ByteTable& bytes, const EvalOptions& options, const TttLoraOptions& lora,
                                bool adapt, Precision precision) {
  auto run = [&](TttEngine& engine) {
    std::optional<TttLora> adapter;
    if (adapt) adapter.emplace(engine, lora, model.config().layers, options.seq_len);
    return evaluate_documents(tokens, bytes, model.config().vocab, options, lora.chunk_tokens,
                              [&](const DocumentChunk& chunk) {
                                return adapter ? adapter->score(chunk)
                                               : engine.score_suffix(chunk.window, chunk.scored, false);
                              });
  };
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") {  // one window a pass: the trainer's forward, and its backward to adapt
    CudaTrainer trainer = inference_trainer(model, options.seq_len, 1, precision);
    return run(trainer);
  }
#endif
  (void)device, (void)precision;
  Model<float> adapted = model;
  const std::unique_ptr<TttEngine> engine = make_cpu_ttt_engine(adapted, options.threads);
  return run(*engine);
}

std::vector<WeightHessian> calibrate_to(const std::string& path, const std::string& device, const Model<float>& model,
                                        std::span<const uint16_t> tokens, const CalibrationRecord& record,
                                        int threads, bool overwrite, const ProgressReport& progress) {
  const std::vector<TokenWindow> windows = calibration_windows(tokens, record.seq_len);
#ifdef PGOLF_HAVE_CUDA
  const InputMoments moments = device == "cuda" ? input_moments_cuda(model, windows, progress)
                                                : input_moments(model, windows, threads, progress);
#else
  (void)device;
  const InputMoments moments = input_moments(model, windows, threads, progress);
#endif
  std::vector<WeightHessian> hessians = weight_hessians(moments);
  write_hessians(path, hessians, moments.positions(), record, overwrite);
  return hessians;
}

std::vector<uint16_t> self_generate_on(const std::string& device, const Model<float>& model,
                                       const SamplingOptions& options, int threads, const ProgressReport& progress) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return self_generate_cuda(model, options, progress);
#endif
  (void)device;
  return self_generate(options, model.config().vocab, static_cast<size_t>(options.sequences),
                       [&](std::span<const TokenWindow> prefixes) { return model.last_logits(prefixes, threads); },
                       progress);
}

}  // namespace pgolf::cli

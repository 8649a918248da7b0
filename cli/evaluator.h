// What the subcommands that run the model (eval, bench --eval-tokens, sensitivity, calibrate, train
// --calibrate) share: the model built from float tensors (and checked against the tokenizer), and
// where it runs (the CPU reference or a CUDA GPU held to it), so all take the same --device values.
#pragma once
#include <map>
#include <span>
#include <string>
#include <vector>

#include "artifact/load.h"
#include "quant/gptq.h"

#include "data/tokenizer.h"
#include "trainer/calibration.h"
#include "trainer/eval.h"
#include "trainer/model.h"
#include "trainer/training.h"
#include "trainer/ttt.h"

namespace pgolf::cli {

// "auto" (cuda where a GPU is present, else cpu), "cpu" or "cuda"; InputError for anything else and
// for cuda without a GPU or without a CUDA build.
std::string choose_device(const std::string& requested);

// Where GPTQ's linear algebra runs on `device` (choose_device's answer): the CUDA engine for
// "cuda", null (the CPU, the library default) otherwise.
const GptqEngine* gptq_engine_on(const std::string& device);

// "cuda (NVIDIA H200)" or "cpu, 2 threads", for reports.
std::string describe_device(const std::string& device, int threads);

// The model the tensors describe, with the rope base and softcap its checkpoint recorded (where it
// did; RecordedSettings in trainer/model_params.h); InputError when they describe none.
Model<float> model_of(const std::map<std::string, FloatTensor>& tensors, const RecordedSettings& recorded);

// model_of, and InputError when its vocab is not the tokenizer's.
Model<float> evaluation_model(const std::map<std::string, FloatTensor>& tensors, const RecordedSettings& recorded,
                              const Tokenizer& tokenizer);

// On a GPU, kFp32 runs the evaluator's own fp32 kernels (the reference's numbers); kTf32 and kBf16
// the CUDA trainer's forward at that precision. The CPU is fp32 whatever is asked.
EvalResult evaluate_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                       const ByteTable& bytes, const EvalOptions& options, Precision precision = Precision::kFp32);
// With score-first test-time training (options.adapt_chunk = ttt.chunk_tokens) on a copy of the
// model: on the CPU reference, or on a GPU through the CUDA trainer at `precision`.
EvalResult evaluate_ttt_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                           const ByteTable& bytes, EvalOptions options, const TttSgdOptions& ttt, Precision precision);
// Document by document (evaluate_documents) in chunks of lora.chunk_tokens, with per-document LoRA
// on a copy of the model, or (adapt false) without it: what the documents' own context alone gives.
EvalResult evaluate_lora_ttt_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                                const ByteTable& bytes, const EvalOptions& options, const TttLoraOptions& lora,
                                bool adapt, Precision precision);

// The Hessians of the model's matrices on tokens (whole windows of seq_len, every token an input),
// computed on the device and written to path (write_hessians); returns them, for the report.
std::vector<WeightHessian> calibrate_to(const std::string& path, const std::string& device, const Model<float>& model,
                                        std::span<const uint16_t> tokens, const CalibrationRecord& record,
                                        int threads, bool overwrite, const ProgressReport& progress);

// Sequences the model samples itself (self_generate), on the device.
std::vector<uint16_t> self_generate_on(const std::string& device, const Model<float>& model,
                                       const SamplingOptions& options, int threads, const ProgressReport& progress);

}  // namespace pgolf::cli

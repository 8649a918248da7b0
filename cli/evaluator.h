// What the evaluating subcommands (eval, bench --eval-tokens, sensitivity) share: the model built
// from float tensors and checked against the tokenizer, and where it runs (the CPU reference or a
// CUDA GPU held to it), so all take the same --device values.
#pragma once
#include <map>
#include <span>
#include <string>

#include "artifact/load.h"

#include "trainer/eval.h"
#include "trainer/model.h"
#include "trainer/tokenizer.h"

namespace pgolf::cli {

// "auto" (cuda where a GPU is present, else cpu), "cpu" or "cuda"; InputError for anything else and
// for cuda without a GPU or without a CUDA build.
std::string choose_device(const std::string& requested);

// "cuda (NVIDIA H200)" or "cpu, 2 threads", for reports.
std::string describe_device(const std::string& device, int threads);

// The model the tensors describe; InputError when they describe none or its vocab is not the
// tokenizer's.
Model<float> evaluation_model(const std::map<std::string, FloatTensor>& tensors, const Tokenizer& tokenizer);

EvalResult evaluate_on(const std::string& device, const Model<float>& model, std::span<const uint16_t> tokens,
                       const ByteTable& bytes, const EvalOptions& options);

}  // namespace pgolf::cli

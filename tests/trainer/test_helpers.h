// Helpers shared by the trainer tests.
#pragma once
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "trainer/model.h"
#include "trainer/training.h"

namespace pgolf::test {

// The message of the InputError that f() throws, or "" when it throws none.
template <typename F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// The gradient-check model: every path that exists in the real one (GQA, a U-Net skip, two
// decoder blocks), small enough to run thousands of forwards.
inline ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab = 64;
  c.dim = 32;
  c.layers = 3;
  c.heads = 4;
  c.kv_heads = 2;
  c.mlp_hidden = 64;
  return c;
}

// Weights with nothing at a special value: the reference init plus noise on every tensor
// (projections and scales non-zero, resid_mix mixing both inputs), and an embedding large
// enough to bend the logit softcap without saturating it.
template <typename T>
ModelParams<T> random_params(const ModelConfig& config, uint64_t seed) {
  ModelParams<T> p = init_params<T>(config, seed);
  std::mt19937_64 rng(seed + 1);
  std::uniform_real_distribution<double> noise(-1.0, 1.0);
  for_each_parameter(p, [&](const std::string& name, Matrix<T>& m, const std::vector<int64_t>&) {
    const bool is_weight = name.ends_with(".weight");
    const double amplitude = name == "tok_emb.weight" ? 0.3 : is_weight ? 1.0 / std::sqrt(double(m.cols())) : 0.5;
    for (auto& x : m.reshaped()) x += static_cast<T>(amplitude * noise(rng));
  });
  return p;
}

// Training at the tiny model: sequences of 16, micro-batches of 4, two per step (accumulation is
// exercised), warmdown and momentum warm-up over half the steps, clipping on.
inline TrainSettings tiny_train_settings(int64_t steps) {
  TrainSettings s;
  s.seq_len = 16;
  s.micro_batch = 4;
  s.tokens_per_step = 128;
  s.steps = steps;
  s.warmdown_steps = steps / 2;
  s.optimizer.momentum_warmup_steps = static_cast<int>(steps / 2);
  s.optimizer.grad_clip = 1.0;
  return s;
}

// A byte table for a made-up vocabulary: 1 to 3 bytes a token, every fifth with a leading space, id 1
// a boundary (val_bpb's inputs, without a tokenizer).
inline ByteTable made_up_bytes(int vocab) {
  ByteTable bytes;
  for (int v = 0; v < vocab; ++v) {
    bytes.base_bytes.push_back(static_cast<int16_t>(1 + v % 3));
    bytes.has_leading_space.push_back(v % 5 == 0);
    bytes.is_boundary.push_back(v == 1);
  }
  return bytes;
}

// count tokens below vocab, deterministic in seed.
inline std::vector<uint16_t> random_tokens(size_t count, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> tokens(count);
  for (auto& t : tokens) t = static_cast<uint16_t>(rng() % static_cast<uint64_t>(vocab));
  return tokens;
}

}  // namespace pgolf::test

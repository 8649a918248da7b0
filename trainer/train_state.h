// What a training run is at a step boundary, and its two files: the training state (fp32
// weights, optimizer state, step, data position, training time; --resume reads it) and the
// checkpoint (bf16 weights under the reference trainer's tensor names, as samples/base9).
// Both are safetensors, written atomically.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "data/token_stream.h"
#include "trainer/optimizer.h"

namespace pgolf {

struct TrainState {
  ModelConfig config;
  ModelParams<float> params;
  OptimizerState optimizer;
  int64_t step = 0;             // optimizer steps done
  StreamPosition data;          // where the next micro-batch starts
  double elapsed_seconds = 0;   // training time so far (validation not counted)
};

// A fresh run: the reference initialisation, zero optimizer state, the data from its start.
TrainState initial_train_state(const ModelConfig& config, uint64_t seed);

void save_train_state(const std::string& path, const TrainState& state, bool overwrite);
// InputError naming the file when it is not a training state or its tensors do not fit its config.
TrainState load_train_state(const std::string& path);

// What the checkpoint holds: the weights' moving average where training keeps one, else the weights.
inline const ModelParams<float>& checkpoint_weights(const TrainState& state) {
  return state.optimizer.ema.blocks.empty() ? state.params : state.optimizer.ema;
}

// The weights as bf16 safetensors with the reference names.
void save_checkpoint(const std::string& path, const ModelParams<float>& params,
                     const std::map<std::string, std::string>& metadata, bool overwrite);

}  // namespace pgolf

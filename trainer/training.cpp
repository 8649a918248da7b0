#include "trainer/training.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/error.h"

namespace pgolf {

void TrainSettings::validate() const {
  require(seq_len > 0 && micro_batch > 0 && tokens_per_step > 0,
          "--seq-len, --micro-batch and --tokens-per-step must be positive");
  const int64_t micro_tokens = int64_t{micro_batch} * seq_len;
  require(tokens_per_step % micro_tokens == 0,
          "--tokens-per-step " + std::to_string(tokens_per_step) + " is not a multiple of --micro-batch x --seq-len = " +
              std::to_string(micro_tokens));
  require(steps >= 0 && stop_at >= 0 && max_seconds >= 0 && warmdown_steps >= 0 && val_every >= 0 && val_tokens >= 0 && log_every > 0,
          "--steps, --stop-at, --max-seconds, --warmdown, --val-every and --val-tokens must not be negative, --log-every positive");
  require(optimizer.newton_schulz_steps >= 0 && optimizer.momentum_warmup_steps >= 0 && optimizer.grad_clip >= 0 &&
              optimizer.muon_weight_decay >= 0 && optimizer.embed_weight_decay >= 0 && optimizer.scalar_weight_decay >= 0,
          "--ns-steps, --momentum-warmup-steps, --grad-clip, --muon-wd, --embed-wd and --scalar-wd must not be negative");
  require(optimizer.embed_lr * optimizer.embed_weight_decay < 1 && optimizer.scalar_lr * optimizer.scalar_weight_decay < 1,
          "--embed-wd, --scalar-wd: their group's lr x decay must be below 1");
  require(loop_from >= 0 && loop_from < 1, "--loop-from is a fraction of training in [0, 1)");
  require(ema_from >= 0 && ema_from < 1, "--ema-from is a fraction of training in [0, 1)");
  require(lr_floor >= 0 && lr_floor <= 1, "--lr-floor is a fraction of the learning rates in [0, 1]");
  require(optimizer.ema_decay >= 0 && optimizer.ema_decay < 1, "--ema is a decay in [0, 1) (0: no average)");
  require(optimizer.matrix_lr * optimizer.muon_weight_decay < 1,
          "--muon-wd: matrix-lr x muon-wd must be below 1 (each step scales the matrices by 1 - their product)");
}

void TrainSettings::validate_ranks(int ranks) const {
  require(ranks > 0 && micro_batches() % ranks == 0,
          "--gpus " + std::to_string(ranks) + " must divide the " + std::to_string(micro_batches()) +
              " micro-batches of a step (--tokens-per-step / (--micro-batch x --seq-len))");
}

Precision parse_precision(const std::string& name) {
  if (name == "auto") return Precision::kAuto;
  if (name == "fp32") return Precision::kFp32;
  if (name == "tf32") return Precision::kTf32;
  if (name == "bf16") return Precision::kBf16;
  throw InputError("--precision must be auto, fp32, tf32 or bf16, not '" + name + "'");
}

namespace {

// The warmdown's multiplier before the floor.
double warmdown_scale(const TrainSettings& s, int64_t step, double elapsed_seconds) {
  if (s.warmdown_steps <= 0) return 1.0;
  const double warmdown = static_cast<double>(s.warmdown_steps);
  if (s.max_seconds <= 0) {
    const int64_t start = std::max<int64_t>(s.steps - s.warmdown_steps, 0);
    if (step < start || step >= s.steps) return 1.0;
    return std::max(static_cast<double>(s.steps - step) / warmdown, 0.0);
  }
  const double step_seconds = elapsed_seconds / static_cast<double>(std::max<int64_t>(step, 1));
  const double warmdown_seconds = warmdown * step_seconds;
  const double remaining = std::max(s.max_seconds - elapsed_seconds, 0.0);
  return remaining <= warmdown_seconds ? remaining / std::max(warmdown_seconds, 1e-9) : 1.0;
}

}  // namespace

double lr_scale(const TrainSettings& s, int64_t step, double elapsed_seconds) {
  return std::max(warmdown_scale(s, step, elapsed_seconds), s.lr_floor);
}

bool reached(const TrainSettings& s, double fraction, int64_t step, double elapsed_seconds) {
  if (fraction <= 0) return true;
  if (s.max_seconds > 0) return elapsed_seconds >= fraction * s.max_seconds;
  return static_cast<double>(step) >= fraction * static_cast<double>(s.steps);
}

namespace {

class CpuEngine final : public TrainEngine {
 public:
  CpuEngine(const TrainState& state, const OptimizerSettings& optimizer, int threads)
      : model_(state.config, state.params),
        optimizer_(optimizer),
        state_(state.optimizer),
        grad_(zero_params<float>(state.config)),
        threads_(threads) {
    if (optimizer.ema_decay == 0) state_.ema = {};  // a run without the average drops a stale one (as the GPU's)
  }

  double accumulate(std::span<const TokenWindow> windows, double weight) override {
    ModelParams<float> g;
    const double loss = model_.loss_and_gradient(windows, g, threads_);
    const auto sum = named_tensors(grad_), term = named_tensors(g);
    for (size_t i = 0; i < sum.size(); ++i) *sum[i].second += static_cast<float>(weight) * *term[i].second;
    return loss;
  }
  void step(double scale, int64_t step) override {
    optimizer_step(optimizer_, scale, step, model_.params(), grad_, state_);
    for (auto& [name, g] : named_tensors(grad_)) g->setZero();
  }
  std::vector<double> token_losses(std::span<const TokenWindow> windows, size_t scored) override {
    return last_targets(model_.token_losses(windows, threads_), windows.size(), scored);
  }
  size_t windows_per_call() const override { return static_cast<size_t>(std::max(threads_, 1)) * 4; }
  void export_state(TrainState& state) override {
    state.params = model_.params();
    state.optimizer = state_;
  }
  std::string device() const override { return "cpu, " + std::to_string(threads_) + " threads"; }
  void set_looping(bool on) override { model_.set_looping(on); }
  void start_ema() override { start_moving_average(optimizer_, model_.params(), state_); }
  void swap_ema() override {
    if (!state_.ema.blocks.empty()) std::swap(model_.params(), state_.ema);
  }

 private:
  Model<float> model_;
  OptimizerSettings optimizer_;
  OptimizerState state_;
  ModelParams<float> grad_;
  int threads_;
};

std::string format(const char* pattern, auto... values) {
  char line[256];
  std::snprintf(line, sizeof line, pattern, values...);
  return line;
}

}  // namespace

std::unique_ptr<TrainEngine> make_cpu_engine(const TrainState& state, const OptimizerSettings& optimizer, int threads) {
  return std::make_unique<CpuEngine>(state, optimizer, threads);
}

TrainResult train(TrainEngine& engine, TokenStream& stream, TrainState& state, const TrainSettings& s,
                  const ValSet* val, const std::function<void(const std::string&)>& log, const TrainBreaks& breaks) {
  s.validate();
  using Clock = std::chrono::steady_clock;
  TrainResult result;
  const int64_t micro_batches = s.micro_batches();
  const int rank = engine.rank(), ranks = engine.ranks();
  s.validate_ranks(ranks);
  const size_t micro_tokens = static_cast<size_t>(s.micro_batch) * s.seq_len;
  auto validate = [&](int64_t max_tokens) {
    EvalOptions options;
    options.seq_len = s.seq_len;
    options.max_sequences = max_tokens / s.seq_len;
    return evaluate_windows(val->tokens, val->bytes, state.config.vocab, options, engine.windows_per_call(),
                            [&](std::span<const TokenWindow> windows, size_t scored) { return engine.token_losses(windows, scored); });
  };
  bool engine_looping = true;  // engines start with the model's loop on
  bool averaging = !state.optimizer.ema.blocks.empty();  // a resumed run's average goes on
  while (true) {
    if (const bool looping = reached(s, s.loop_from, state.step, state.elapsed_seconds); looping != engine_looping) {
      engine.set_looping(looping);
      engine_looping = looping;
      if (state.config.recurrent() && looping)
        log(format("step %lld: the loop of blocks %d..%d starts", static_cast<long long>(state.step),
                   state.config.loop_first, state.config.loop_last));
    }
    const bool last = result.stopped || state.step >= s.steps || (s.stop_at > 0 && state.step >= s.stop_at) ||
                      (s.max_seconds > 0 && state.elapsed_seconds >= s.max_seconds);
    if (val && s.val_every > 0 && !last && state.step % s.val_every == 0) {
      const EvalResult r = validate(s.val_tokens);
      log(format("step %lld val_loss %.4f val_bpb %.4f (%lld tokens)", static_cast<long long>(state.step), r.val_loss,
                 r.val_bpb, static_cast<long long>(r.tokens)));
    }
    if (last) break;
    if (s.optimizer.ema_decay > 0 && !averaging && reached(s, s.ema_from, state.step, state.elapsed_seconds)) {
      engine.start_ema();
      averaging = true;
      if (s.ema_from > 0) log(format("step %lld: the weights' average starts", static_cast<long long>(state.step)));
    }
    const auto start = Clock::now();
    const double scale = lr_scale(s, state.step, state.elapsed_seconds);
    double loss = 0;
    for (int64_t k = 0; k < micro_batches; ++k) {
      // As the reference's loader: micro_tokens + 1 tokens make micro_batch overlapping windows.
      const std::vector<uint16_t> tokens = stream.take(micro_tokens + 1);
      if (k % ranks != rank) continue;
      std::vector<TokenWindow> windows;
      for (int b = 0; b < s.micro_batch; ++b)
        windows.push_back(std::span(tokens).subspan(static_cast<size_t>(b) * s.seq_len, s.seq_len + 1));
      loss += engine.accumulate(windows, 1.0 / static_cast<double>(micro_batches)) / static_cast<double>(micro_batches);
    }
    engine.step(scale, state.step);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    result.stopped = breaks.stop && breaks.stop();
    if (ranks > 1) {
      double shared[3] = {loss, rank == 0 ? seconds : 0.0, result.stopped ? 1.0 : 0.0};
      engine.sum_over_ranks(shared);
      loss = shared[0];
      seconds = shared[1];
      result.stopped = shared[2] > 0;
    }
    ++state.step;
    state.elapsed_seconds += seconds;
    state.data = stream.position();
    result.losses.push_back(loss);
    result.tokens += s.tokens_per_step;
    result.seconds += seconds;
    if (state.step % s.log_every == 0 || state.step == s.steps)
      log(format("step %lld/%lld loss %.6f lr %.5f tok/s %.0f train_time %.1fs", static_cast<long long>(state.step),
                 static_cast<long long>(s.steps), loss, s.optimizer.matrix_lr * scale,
                 static_cast<double>(s.tokens_per_step) / seconds, state.elapsed_seconds));
    if (breaks.save && breaks.save_every > 0 && state.step % breaks.save_every == 0 && !result.stopped) {
      engine.export_state(state);
      breaks.save(state);
    }
  }
  engine.export_state(state);
  if (!engine_looping) engine.set_looping(true);  // the trained model runs its loop from here on
  if (result.stopped) log(format("stopped at step %lld on request", static_cast<long long>(state.step)));
  if (val && !result.stopped) {  // of what the checkpoint holds: the moving average where there is one
    const bool average = !state.optimizer.ema.blocks.empty();
    if (average) {  // the weights themselves too, so that what the average gave shows
      result.final_val_weights = validate(s.val_tokens);
      log(format("step %lld val_loss %.6f val_bpb %.6f (the weights themselves, not the checkpoint)",
                 static_cast<long long>(state.step), result.final_val_weights.val_loss, result.final_val_weights.val_bpb));
      engine.swap_ema();
    }
    result.final_val = validate(s.val_tokens);
    if (average) engine.swap_ema();
    log(format("step %lld val_loss %.6f val_bpb %.6f (final, %s%lld tokens)", static_cast<long long>(state.step),
               result.final_val.val_loss, result.final_val.val_bpb, average ? "the weights' average, " : "",
               static_cast<long long>(result.final_val.tokens)));
  }
  const int64_t peak = engine.peak_memory_bytes();
  log(format("done: %lld steps, %lld tokens, %.2f s, %.0f tokens/s", static_cast<long long>(result.losses.size()),
             static_cast<long long>(result.tokens), result.seconds,
             result.seconds > 0 ? static_cast<double>(result.tokens) / result.seconds : 0.0) +
      (peak > 0 ? format(", peak GPU memory %lld MiB", static_cast<long long>(peak >> 20)) : ""));
  return result;
}

}  // namespace pgolf

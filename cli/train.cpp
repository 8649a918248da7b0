// pgolf train: trains the Parameter Golf baseline model with the reference recipe (Muon + Adam,
// linear warmdown) on a data folder's train shards, then writes PREFIX.safetensors (bf16, the
// reference names) and PREFIX.state (everything --resume needs). Every setting is a flag; --config
// JSON files may give any of them by the flag's name (a later file wins over an earlier one, a flag
// on the command line over every file).
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "checkpoint/float_tensor.h"
#include "checkpoint/safetensors.h"
#include "cli/command.h"
#include "cli/evaluator.h"
#include "cli/options.h"
#include "cli/val_data.h"
#include "core/error.h"
#include "core/spec.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "trainer/ranks.h"
#include "trainer/training.h"

#ifdef PGOLF_HAVE_CUDA
#include "gpu/cuda_train.h"
#endif

namespace pgolf::cli {

namespace {

// A setting from the command line, else the config file, else the flag's default; records which
// names were read so unknown config keys are refused.
class Settings {
 public:
  Settings(const cxxopts::ParseResult& args, nlohmann::json config) : args_(args), config_(std::move(config)) {}

  template <typename V>
  V get(const std::string& name) {
    known_.insert(name);
    if (args_.count(name) || !config_.contains(name)) return args_[name].as<V>();
    try {
      return config_[name].get<V>();
    } catch (const nlohmann::json::exception&) {
      throw InputError("--config: '" + name + "' has the wrong type: " + config_[name].dump());
    }
  }
  bool given(const std::string& name) const { return args_.count(name) > 0 || config_.contains(name); }
  void check_config_keys() const {
    for (const auto& [key, value] : config_.items()) {
      if (known_.contains(key)) continue;
      const std::string near = nearest_name(key, std::vector<std::string>(known_.begin(), known_.end()));
      throw InputError("--config: unknown setting '" + key + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)"));
    }
  }

 private:
  const cxxopts::ParseResult& args_;
  nlohmann::json config_;
  std::set<std::string> known_;
};

// The files' settings, each file's over the ones before it (a preset, then an overlay such as
// samples/configs/one-gpu.json).
nlohmann::json read_configs(const std::vector<std::string>& paths) {
  nlohmann::json merged = nlohmann::json::object();
  for (const std::string& path : paths) {
    std::ifstream in(path);
    require(in.good(), path + ": cannot read the config file");
    const nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
    require(!config.is_discarded() && config.is_object(), path + ": not a JSON object");
    merged.update(config);
  }
  return merged;
}

std::unique_ptr<TrainEngine> make_engine(const std::string& device, const TrainState& state,
                                         const TrainSettings& settings, int threads, Precision precision) {
#ifdef PGOLF_HAVE_CUDA
  if (device == "cuda") return std::make_unique<CudaTrainer>(state, settings, precision);
#endif
  (void)device, (void)precision;
  return make_cpu_engine(state, settings.optimizer, threads);
}

// The signal that asked the run to stop (0: none); read between steps.
std::atomic<int> g_stop_signal{0};
extern "C" void request_stop(int signal) { g_stop_signal.store(signal); }

}  // namespace

int train_main(int argc, char** argv) {
  cxxopts::Options options(
      "pgolf train",
      "Train the Parameter Golf baseline (Muon + Adam, linear warmdown) on Parameter Golf shards.\n"
      "  pgolf train --data DIR --out runs/base --steps 1000 --max-seconds 270 --warmdown 400\n"
      "  pgolf train --data DIR --out runs/more --resume runs/base.state --steps 2000");
  // Each default is the settings struct's, written once there.
  const TrainSettings defaults;
  const OptimizerSettings& opt = defaults.optimizer;
  const ModelConfig model_defaults;
  // clang-format off
  options.add_options()
      ("data", "folder of *_train_*.bin and *_val_*.bin shards and the *.model tokenizer", cxxopts::value<std::string>())
      ("o,out,output", "write OUT.safetensors (bf16 weights) and OUT.state (training state) (or --output)",
       cxxopts::value<std::string>())
      ("config", "JSON object of settings named as the flags; given again (or FILE,FILE), a later file's settings "
                 "win (a preset, then an overlay such as samples/configs/one-gpu.json)",
       cxxopts::value<std::vector<std::string>>())
      ("resume", "continue from a training state (its model, optimizer, step and data position)",
       cxxopts::value<std::string>())
      ("init", "start from these weights instead of the seed's initialisation: a checkpoint (safetensors, HF "
               "shards, a PyTorch state dict) of the model the flags describe, under the reference's names (e.g. "
               "another trainer's initial weights, to follow it step by step); a fresh optimizer",
       cxxopts::value<std::vector<std::string>>())
      ("overwrite,force", "replace existing output files (or --force)")
      ("save-every", "also write OUT.safetensors and OUT.state every N steps (0: only at the end; SIGINT, SIGTERM "
                     "and SIGHUP always save before stopping)", cxxopts::value<int64_t>()->default_value("0"))
      ("device", "auto, cpu or cuda (auto: cuda when a GPU is present)", cxxopts::value<std::string>()->default_value("auto"))
      ("precision", "auto, fp32, tf32 or bf16. cuda: bf16 (auto) puts the GEMMs and attention on bf16 tensor "
       "cores with fp32 weights, optimizer state and loss; tf32 the GEMMs on TF32; fp32 holds the CPU reference's "
       "numbers. cpu: fp32 only", cxxopts::value<std::string>()->default_value("auto"))
      ("gpus", "data-parallel training on GPUs 0 .. N-1 of this host, one process each, over NCCL (0: one GPU, "
       "no NCCL)", cxxopts::value<int>()->default_value("0"))
      ("threads", "CPU threads (default: every core)", cxxopts::value<int>()->default_value("0"))
      ("calibrate", "after training, the Hessians of the saved weights on the first N train tokens into "
                    "OUT.h.safetensors (as pgolf calibrate writes them; 0: none)",
       cxxopts::value<int64_t>()->default_value("0"));
  options.add_options("model")
      ("vocab", "vocabulary size (the tokenizer's)", cxxopts::value<int>()->default_value("1024"))
      ("dim", "model dim", cxxopts::value<int>()->default_value("512"))
      ("layers", "blocks", cxxopts::value<int>()->default_value("9"))
      ("heads", "query heads", cxxopts::value<int>()->default_value("8"))
      ("kv-heads", "key/value heads", cxxopts::value<int>()->default_value("4"))
      ("mlp-mult", "MLP hidden = mlp-mult x dim", cxxopts::value<int>()->default_value("2"))
      ("activation", "the MLP's activation: relu2 (the baseline) or leaky-relu2:S (LeakyReLU with negative slope S, "
                     "squared; the records use 0.5)", cxxopts::value<std::string>()->default_value("relu2"))
      ("logit-softcap", "logit softcap", cxxopts::value<double>()->default_value(number_text(model_defaults.logit_softcap)))
      ("rope-base", "RoPE base", cxxopts::value<double>()->default_value(number_text(model_defaults.rope_base)))
      ("rope-dims", "partial RoPE: rotate the first N dims of each head, leave the rest (0: the whole head; the "
                    "records use 16 of 64)", cxxopts::value<int>()->default_value("0"))
      ("rope-table", "RoPE's cos/sin table: fp32; bf16 as the Parameter Golf baseline script computes it eagerly (its "
                     "model.bfloat16() rounds positions and angles: train so to be scored by its eager bf16 path); "
                     "bf16-compiled as its torch.compile'd training graph does (inv_freq and cos/sin rounded, angles "
                     "exact)",
       cxxopts::value<std::string>()->default_value("fp32"))
      ("smear-gate", "SmearGate, a learned mix of each position's embedding with the previous one's: none, v1 (per "
                     "channel, after the norm: PR #212), v2 (input-dependent, before the norm, not across a BOS: the "
                     "records' fix) or v2-unmasked (v2 across documents too)",
       cxxopts::value<std::string>()->default_value("none"))
      ("bigram-buckets", "BigramHash: a table of this many hashed (previous, current) token pairs added to the "
                         "embedding (0: none; the records use 2048 to 10240)", cxxopts::value<int>()->default_value("0"))
      ("xsa-layers", "XSA on the last N blocks (the records: 3, 4 or all): each head's attention output minus its "
                     "projection on its own value vector", cxxopts::value<int>()->default_value("0"))
      ("loop-layers", "depth recurrence: run blocks A..B --loops times in a row, the same weights each pass (the "
                      "records: 3..5 three times)", cxxopts::value<std::string>())
      ("loops", "passes of the --loop-layers blocks (1: no recurrence)", cxxopts::value<int>()->default_value("1"))
      ("shared-blocks", "PR #212's depth recurrence: K blocks whose stack runs --loops times (--layers K "
                        "--loop-layers 0..K-1)", cxxopts::value<int>())
      ("loop-from", "start the loop at this fraction of training (of --steps, or of --max-seconds where set; the "
                    "records: 0.35 to 0.5)", cxxopts::value<double>()->default_value("0"))
      ("mtp", "multi-token prediction up to token t+K, K >= 2: K - 1 auxiliary heads, trained and never exported "
              "(PR #212: 2, at weight 0.5; 0: none)", cxxopts::value<int>()->default_value("0"))
      ("mtp-weight", "the multi-token heads' loss weight", cxxopts::value<double>()->default_value("0.5"))
      ("parallel-from", "parallel residual lanes from block N on (the records: 7 or 8; 0: none): attention and MLP "
                        "read lanes of their own, each lane gets learned shares of both",
       cxxopts::value<int>()->default_value("0"))
      ("bigram-dim", "BigramHash's table width, projected to the model dim", cxxopts::value<int>()->default_value("128"))
      ("qk-gain-init", "every head's q_gain at initialisation (the baseline 1.5; the records 4 to 5.25)",
       cxxopts::value<double>()->default_value("1.5"))
      ("seed", "initialisation seed", cxxopts::value<uint64_t>()->default_value("1337"));
  options.add_options("schedule")
      ("seq-len", "tokens per sequence", cxxopts::value<int>()->default_value(number_text(defaults.seq_len)))
      ("tokens-per-step", "tokens per optimizer step", cxxopts::value<int64_t>()->default_value(number_text(defaults.tokens_per_step)))
      ("micro-batch", "sequences per forward/backward", cxxopts::value<int>()->default_value(number_text(defaults.micro_batch)))
      ("steps", "optimizer steps (the schedule's length)", cxxopts::value<int64_t>()->default_value(number_text(defaults.steps)))
      ("stop-at", "stop this run at this step without changing the schedule", cxxopts::value<int64_t>()->default_value(number_text(defaults.stop_at)))
      ("max-seconds", "training wallclock limit; the warmdown follows it (0: none)",
       cxxopts::value<double>()->default_value(number_text(defaults.max_seconds)))
      ("warmdown", "steps of linear learning-rate warmdown", cxxopts::value<int64_t>()->default_value(number_text(defaults.warmdown_steps)))
      ("lr-floor", "the warmdown ends at this fraction of the learning rates instead of 0 (R1: 0.1)",
       cxxopts::value<double>()->default_value(number_text(defaults.lr_floor)))
      ("val-every", "steps between validations (0: only at the end)", cxxopts::value<int64_t>()->default_value(number_text(defaults.val_every)))
      ("val-tokens", "tokens each validation scores (0: the whole val split)",
       cxxopts::value<int64_t>()->default_value(number_text(defaults.val_tokens)))
      ("log-every", "steps between log lines", cxxopts::value<int64_t>()->default_value(number_text(defaults.log_every)));
  options.add_options("optimizer")
      ("matrix-lr", "Muon learning rate", cxxopts::value<double>()->default_value(number_text(opt.matrix_lr)))
      ("embed-lr", "Adam learning rate of the tied embedding", cxxopts::value<double>()->default_value(number_text(opt.embed_lr)))
      ("scalar-lr", "Adam learning rate of the scales, gains and mixes", cxxopts::value<double>()->default_value(number_text(opt.scalar_lr)))
      ("muon-momentum", "Muon momentum", cxxopts::value<double>()->default_value(number_text(opt.momentum)))
      ("momentum-warmup-start", "Muon momentum at step 0", cxxopts::value<double>()->default_value(number_text(opt.momentum_warmup_start)))
      ("momentum-warmup-steps", "steps to warm the momentum", cxxopts::value<int>()->default_value(number_text(opt.momentum_warmup_steps)))
      ("ns-steps", "Newton-Schulz iterations", cxxopts::value<int>()->default_value(number_text(opt.newton_schulz_steps)))
      ("ns-coefficients", "Newton-Schulz's (a, b, c): stock (the baseline's, every iteration) or polar-express (the "
                          "records' five tuned iterations, R3 on)", cxxopts::value<std::string>()->default_value("stock"))
      ("muon-row-norm", "MuonEq-R: divide each row of Muon's update by its rms before Newton-Schulz (the records, R1)",
       cxxopts::value<bool>()->default_value("false"))
      ("beta1", "Adam beta1", cxxopts::value<double>()->default_value(number_text(opt.beta1)))
      ("beta2", "Adam beta2", cxxopts::value<double>()->default_value(number_text(opt.beta2)))
      ("adam-eps", "Adam epsilon", cxxopts::value<double>()->default_value(number_text(opt.eps)))
      ("grad-clip", "clip the global gradient norm to this (0: no clipping)", cxxopts::value<double>()->default_value(number_text(opt.grad_clip)))
      ("ema", "a moving average of the weights with this decay, updated after every step (the records: 0.9965); the "
              "checkpoint and the final val_bpb are the average's, the state keeps both (0: none)",
       cxxopts::value<double>()->default_value(number_text(opt.ema_decay)))
      ("ema-warmup", "warm the --ema decay up as TensorFlow's num_updates: min(D, (1 + n) / (10 + n)) after step "
                     "n, so a short run's average follows its last few dozen steps (0.9965 is reached at step 2,560)",
       cxxopts::value<bool>()->default_value("false"))
      ("ema-from", "start the --ema average at this fraction of training (as --loop-from; 0: the first step, as the "
                   "records, whose 4,900 steps forget the initialisation; a run of a few hundred steps does not)",
       cxxopts::value<double>()->default_value(number_text(defaults.ema_from)))
      ("muon-wd", "Muon's decoupled weight decay: matrices scaled by 1 - lr x this before each update (0: none; the "
                  "records use 0.04 and up)", cxxopts::value<double>()->default_value(number_text(opt.muon_weight_decay)))
      ("embed-wd", "AdamW's decoupled weight decay of the tied embedding (and BigramHash's table): scaled by 1 - lr x "
                   "this before each update (0: Adam; R1: 0.085)",
       cxxopts::value<double>()->default_value(number_text(opt.embed_weight_decay)))
      ("scalar-wd", "the same for the scales, gains, mixes and skip weights (0: Adam; R1: 0.02)",
       cxxopts::value<double>()->default_value(number_text(opt.scalar_weight_decay)));
  // clang-format on
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args, {"", "model", "schedule", "optimizer"})) return 0;
  require(args.count("data") > 0, "--data DIR is required (pgolf train --help)");
  require(args.count("out") > 0, "--out PREFIX is required (pgolf train --help)");
  Settings settings(args, args.count("config") ? read_configs(args["config"].as<std::vector<std::string>>())
                                               : nlohmann::json::object());

  ModelConfig config;
  config.vocab = settings.get<int>("vocab");
  config.dim = settings.get<int>("dim");
  config.layers = settings.get<int>("layers");
  config.heads = settings.get<int>("heads");
  config.kv_heads = settings.get<int>("kv-heads");
  config.mlp_hidden = settings.get<int>("mlp-mult") * config.dim;
  config.logit_softcap = settings.get<double>("logit-softcap");
  config.rope_base = settings.get<double>("rope-base");
  config.mlp_negative_slope = parse_activation(settings.get<std::string>("activation"));
  config.rope_dims = settings.get<int>("rope-dims");
  config.rope_rounding = parse_rope_rounding(settings.get<std::string>("rope-table"));
  config.xsa_layers = settings.get<int>("xsa-layers");
  config.smear_gate = parse_smear_gate(settings.get<std::string>("smear-gate"));
  config.bigram_buckets = settings.get<int>("bigram-buckets");
  require(config.bigram_buckets != 1 && config.bigram_buckets >= 0,
          "--bigram-buckets " + std::to_string(config.bigram_buckets) + ": 0 (none) or 2 to 65536");
  // A preset's width with the table turned off by a flag is fine; a width flag without a table is not.
  require(config.bigram_buckets > 0 || args.count("bigram-dim") == 0, "--bigram-dim needs --bigram-buckets");
  const int bigram_dim = settings.get<int>("bigram-dim");  // read either way: a preset's key is known
  config.bigram_dim = config.bigram_buckets > 0 ? bigram_dim : 0;
  const int mtp = settings.get<int>("mtp");
  require(mtp == 0 || mtp >= 2, "--mtp " + std::to_string(mtp) + ": K >= 2 (predict up to token t+K), or 0 for none");
  config.mtp_heads = mtp == 0 ? 0 : mtp - 1;
  config.mtp_weight = settings.get<double>("mtp-weight");
  config.parallel_from = settings.get<int>("parallel-from");
  require(mtp > 0 || !settings.given("mtp-weight"), "--mtp-weight needs --mtp K");
  config.loops = settings.get<int>("loops");
  require(!(settings.given("shared-blocks") && settings.given("loop-layers")),
          "--shared-blocks K loops the whole stack; --loop-layers A..B a range of it: one or the other");
  if (settings.given("shared-blocks")) {
    config.layers = settings.get<int>("shared-blocks");
    require(config.layers > 0, "--shared-blocks K needs K > 0 blocks");
    config.loop_first = 0, config.loop_last = config.layers - 1;
  } else if (settings.given("loop-layers")) {
    std::tie(config.loop_first, config.loop_last) = parse_loop_range(settings.get<std::string>("loop-layers"));
  }
  require(config.loops == 1 || settings.given("shared-blocks") || settings.given("loop-layers"),
          "--loops " + std::to_string(config.loops) + " needs --loop-layers A..B or --shared-blocks K");
  require(config.loops >= 2 || !(settings.given("shared-blocks") || settings.given("loop-layers")),
          "--loop-layers and --shared-blocks need --loops N of at least 2 passes");
  const auto seed = settings.get<uint64_t>("seed");
  const double qk_gain_init = settings.get<double>("qk-gain-init");
  require(qk_gain_init > 0 && std::isfinite(qk_gain_init), "--qk-gain-init must be positive");
  TrainSettings s;
  s.seq_len = settings.get<int>("seq-len");
  s.tokens_per_step = settings.get<int64_t>("tokens-per-step");
  s.micro_batch = settings.get<int>("micro-batch");
  s.steps = settings.get<int64_t>("steps");
  s.stop_at = settings.get<int64_t>("stop-at");
  s.max_seconds = settings.get<double>("max-seconds");
  s.warmdown_steps = settings.get<int64_t>("warmdown");
  s.lr_floor = settings.get<double>("lr-floor");
  s.val_every = settings.get<int64_t>("val-every");
  s.val_tokens = settings.get<int64_t>("val-tokens");
  s.loop_from = settings.get<double>("loop-from");
  s.ema_from = settings.get<double>("ema-from");
  s.log_every = settings.get<int64_t>("log-every");
  OptimizerSettings& o = s.optimizer;
  o.matrix_lr = settings.get<double>("matrix-lr");
  o.embed_lr = settings.get<double>("embed-lr");
  o.scalar_lr = settings.get<double>("scalar-lr");
  o.momentum = settings.get<double>("muon-momentum");
  o.momentum_warmup_start = settings.get<double>("momentum-warmup-start");
  o.momentum_warmup_steps = settings.get<int>("momentum-warmup-steps");
  o.newton_schulz_steps = settings.get<int>("ns-steps");
  o.newton_schulz_coefficients = parse_newton_schulz_coefficients(settings.get<std::string>("ns-coefficients"));
  o.muon_row_normalize = settings.get<bool>("muon-row-norm");
  o.beta1 = settings.get<double>("beta1");
  o.beta2 = settings.get<double>("beta2");
  o.eps = settings.get<double>("adam-eps");
  o.grad_clip = settings.get<double>("grad-clip");
  o.muon_weight_decay = settings.get<double>("muon-wd");
  o.embed_weight_decay = settings.get<double>("embed-wd");
  o.scalar_weight_decay = settings.get<double>("scalar-wd");
  o.ema_decay = settings.get<double>("ema");
  o.ema_warmup = settings.get<bool>("ema-warmup");
  const std::string device_flag = settings.get<std::string>("device");
  const int gpus = settings.get<int>("gpus");
  require(gpus >= 0, "--gpus must not be negative");
  require(gpus == 0 || device_flag == "auto" || device_flag == "cuda",
          "--gpus trains on GPUs; it cannot run with --device " + device_flag);
  // With --gpus this process only starts the ranks and must not touch the GPU before fork.
  const std::string device = gpus > 0 ? "cuda" : choose_device(device_flag);
  const std::string precision_name = settings.get<std::string>("precision");
  const Precision precision = parse_precision(precision_name);
  require(device == "cuda" || precision == Precision::kAuto || precision == Precision::kFp32,
          "--precision " + precision_name + " is for --device cuda; the CPU trainer is fp32");
  const int64_t save_every = settings.get<int64_t>("save-every");
  require(save_every >= 0, "--save-every must not be negative");
  const int64_t calibrate_tokens = settings.get<int64_t>("calibrate");
  require(calibrate_tokens >= 0, "--calibrate must not be negative");
  int threads = settings.get<int>("threads");
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  settings.check_config_keys();
  s.validate();
  if (gpus > 0) s.validate_ranks(gpus);

  // Every check before the first step: the model, the data, the tokenizer, the outputs.
  const bool resume = args.count("resume") > 0;
  require(!resume || args.count("init") == 0, "--init starts a run from weights, --resume continues one: not both");
  require(args.count("init") == 0 || !settings.given("qk-gain-init"), "--qk-gain-init: --init's weights hold q_gain");
  TrainState state;
  if (resume) {
    state = load_train_state(args["resume"].as<std::string>());
    bool model_given = false;
    for (const char* name :
         {"vocab", "dim", "layers", "heads", "kv-heads", "mlp-mult", "logit-softcap", "rope-base", "activation",
          "rope-dims", "rope-table", "smear-gate", "bigram-buckets", "bigram-dim", "xsa-layers", "loop-layers", "loops",
          "shared-blocks", "mtp", "mtp-weight", "parallel-from"})
      model_given = model_given || settings.given(name);
    require(!model_given || state.config.describe() == config.describe(),
            "--resume: the state's model (" + state.config.describe() + ") is not the one asked for (" +
                config.describe() + ")");
  } else {
    config.validate();
    state = initial_train_state(config, seed);
    if (args.count("init")) {
      const auto paths = args["init"].as<std::vector<std::string>>();
      state.params = params_from_tensors<float>(config, float_tensors_of(Checkpoint::open(paths)));
    } else {
      for (BlockParams<float>& block : state.params.blocks) block.q_gain.setConstant(static_cast<float>(qk_gain_init));
    }
  }
  const ModelConfig& model = state.config;
  require(s.loop_from == 0 || model.recurrent(), "--loop-from needs depth recurrence (--loop-layers or --shared-blocks)");
  require((s.ema_from == 0 && !s.optimizer.ema_warmup) || s.optimizer.ema_decay > 0,
          "--ema-from and --ema-warmup need an average (--ema)");
  const std::string data_dir = args["data"].as<std::string>();
  const std::vector<std::string> train_shards = find_shards(data_dir, "train");
  const std::string tokenizer_path = find_tokenizer(data_dir);
  const Tokenizer tokenizer = Tokenizer::load(tokenizer_path);
  require(tokenizer.vocab_size() == model.vocab, "model vocab " + std::to_string(model.vocab) + " != the vocab " +
                                                     std::to_string(tokenizer.vocab_size()) + " of tokenizer " +
                                                     tokenizer_path);
  ValSet val{read_val_tokens(find_shards(data_dir, "val"), 0), tokenizer.byte_table()};
  require(static_cast<int64_t>(val.tokens.size()) > s.seq_len,
          data_dir + ": the val split has fewer than --seq-len + 1 tokens");
  const std::string out = args["out"].as<std::string>();
  const std::string checkpoint_path = out + ".safetensors", state_path = out + ".state";
  const std::string calibration_path = out + ".h.safetensors";
  const bool overwrite = args.count("overwrite") > 0;
  // --resume's state is read whole before training, so a run may continue in place (--overwrite).
  for (const std::string& path : {checkpoint_path, state_path}) check_output(path, {}, overwrite, "--overwrite");
  if (calibrate_tokens > 0) {
    check_output(calibration_path, {}, overwrite, "--overwrite");
  }
  // Read (and so checked) before training.
  const std::vector<uint16_t> calibration_tokens =
      calibrate_tokens > 0 ? read_train_windows(data_dir, calibrate_tokens, s.seq_len) : std::vector<uint16_t>{};
  // The Hessians of the checkpoint as saved (bf16), on the device training used.
  auto calibrate_saved = [&] {
    std::map<std::string, std::string> metadata;
    const auto tensors = load_float_tensors({checkpoint_path}, &metadata);
    const Model<float> trained = model_of(tensors, recorded_settings(metadata));
    const auto start = std::chrono::steady_clock::now();
    const auto hessians = calibrate_to(calibration_path, device, trained, calibration_tokens,
                                       {checkpoint_path, "train:" + data_dir, s.seq_len}, threads, true, progress_bars());
    std::printf("calibrated %zu matrices on %zu train tokens (%.2f s): wrote %s\n", hessians.size(), calibration_tokens.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), calibration_path.c_str());
  };
  TokenStream stream(train_shards, state.data);

  // Trains on engine and writes the outputs; with several ranks only rank 0 logs and writes.
  auto run = [&](TrainEngine& engine) {
    const bool lead = engine.rank() == 0;
    if (lead) {
      std::printf("model    %s, %s\n", model.describe().c_str(), resume ? "resumed" : "initialised");
      std::printf("data     %s: %zu train shards, tokenizer %s\n", data_dir.c_str(), train_shards.size(),
                  tokenizer_path.c_str());
      std::printf(
          "steps    %lld x %lld tokens (%lld micro-batches of %d x %d), warmdown %lld, max %.0f s, from step %lld\n",
          static_cast<long long>(s.steps), static_cast<long long>(s.tokens_per_step),
          static_cast<long long>(s.micro_batches()), s.micro_batch, s.seq_len,
          static_cast<long long>(s.warmdown_steps), s.max_seconds, static_cast<long long>(state.step));
      std::printf("device   %s\n", engine.device().c_str());
      std::fflush(stdout);
    }
    // The outputs were checked before training: every save replaces the last one.
    auto save = [&](const TrainState& saved) {
      if (!lead) return;
      save_checkpoint(checkpoint_path, checkpoint_weights(saved), recorded_metadata(saved.config, s.seq_len), true);
      save_train_state(state_path, saved, true);
      std::printf("wrote    %s, %s (step %lld)\n", checkpoint_path.c_str(), state_path.c_str(),
                  static_cast<long long>(saved.step));
      std::fflush(stdout);
    };
    const TrainBreaks breaks{[] { return g_stop_signal.load() != 0; }, save_every, save};
    const TrainResult result = train(engine, stream, state, s, &val, [lead](const std::string& line) {
      if (!lead) return;
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }, breaks);
    save(state);
    if (result.stopped && lead)
      std::fprintf(stderr, "pgolf train: stopped by %s at step %lld; --resume %s continues the run\n",
                   strsignal(g_stop_signal.load()), static_cast<long long>(state.step), state_path.c_str());
  };
  if (gpus == 0) {
    // Ctrl-C, kill or a closed terminal end the run at the next step boundary, saved.
    for (int signal : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal, request_stop);
    run(*make_engine(device, state, s, threads, precision));
    if (g_stop_signal.load()) return 128 + g_stop_signal.load();
    if (calibrate_tokens > 0) calibrate_saved();
    return 0;
  }
#ifdef PGOLF_HAVE_CUDA
  // One process per GPU: rank 0 makes the NCCL group id, the others read it from the board.
  const int ranks_status = run_ranks(gpus, [&](int rank, RankBoard& board) {
    std::vector<std::byte> id;
    if (rank == 0) {
      id = cuda::RankGroup::new_id();
      board.publish(id);
    } else {
      id = board.wait(600);
    }
    CudaTrainer engine(state, s, precision, cuda::RankGroup::join(id, rank, gpus));
    run(engine);
    return 0;
  });
  // The ranks have ended: this process may use a GPU now.
  if (ranks_status == 0 && calibrate_tokens > 0) calibrate_saved();
  return ranks_status;
#else
  throw InputError("--gpus: this pgolf was built without CUDA");
#endif
}

}  // namespace pgolf::cli

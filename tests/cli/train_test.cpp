// pgolf train as a user runs it, on the CPU at a tiny model over samples/sp1024: a resumed run
// repeats a straight run's losses, and bad input is refused before training with nothing written.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli/run_pgolf.h"
#ifdef PGOLF_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "gpu/cuda_eval.h"
#endif
#include "checkpoint/safetensors.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

const std::string kTinyModel = " --vocab 1024 --dim 32 --layers 3 --heads 4 --kv-heads 2 --seq-len 32 --micro-batch 2"
                               " --tokens-per-step 128 --warmdown 3 --val-tokens 64";
const std::string kTiny = kTinyModel + " --device cpu --threads 2";

std::string data() { return " --data " + test::sample_path("sp1024"); }

// args with --flag's value replaced (pgolf refuses a flag given twice).
std::string with_flag(std::string args, const std::string& flag, const std::string& value) {
  const std::string key = " --" + flag + " ";
  const size_t at = args.find(key);
  if (at == std::string::npos) return args + key + value;
  const size_t start = at + key.size(), end = args.find(' ', start);
  return args.replace(start, end == std::string::npos ? std::string::npos : end - start, value);
}

// The training losses of the log's "step N/M loss X" lines.
std::vector<std::string> losses(const std::string& log) {
  std::vector<std::string> found;
  const std::regex line(R"(step \d+/\d+ loss (\S+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
    found.push_back((*it)[1]);
  return found;
}

TEST(CliTrain, ResumedRunRepeatsTheStraightRunsLosses) {
  test::TempDir dir;
  auto r = pgolf("train" + data() + kTiny + " --steps 6 --out " + dir.file("straight"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> expected = losses(r.out);
  ASSERT_EQ(expected.size(), 6u) << r.out;
  EXPECT_NE(r.out.find("val_bpb"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos) << r.out;
  const Checkpoint checkpoint = Checkpoint::open({dir.file("straight.safetensors")});
  EXPECT_EQ(checkpoint.at("blocks.2.attn.c_k.weight").dtype, DType::BF16);
  EXPECT_EQ(checkpoint.tensors().size(), 32u);

  r = pgolf("train" + data() + kTiny + " --steps 6 --stop-at 3 --out " + dir.file("first"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> split = losses(r.out);
  r = pgolf("train" + data() + " --device cpu --threads 2 --seq-len 32 --micro-batch 2 --tokens-per-step 128"
            " --warmdown 3 --val-tokens 64 --steps 6 --resume " + dir.file("first.state") + " --out " + dir.file("rest"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("resumed"), std::string::npos) << r.out;
  for (const std::string& loss : losses(r.out)) split.push_back(loss);
  EXPECT_EQ(split, expected);
}

// Runs pgolf with args (split on spaces), sends `signal` once its output shows `after`, and returns
// its exit code and output.
test::Run run_and_signal(const std::string& args, const std::string& after, int signal) {
  std::vector<std::string> words{PGOLF_BINARY};
  std::istringstream split(args);
  for (std::string word; split >> word;) words.push_back(word);
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  int out[2];
  EXPECT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    ::close(out[0]);
    ::execv(PGOLF_BINARY, argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  bool sent = false;
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<size_t>(n));
    if (!sent && text.find(after) != std::string::npos) {
      ::kill(pid, signal);
      sent = true;
    }
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

TEST(CliTrain, AnInterruptedRunSavesItsStateAndResumesToTheSameLosses) {
  test::TempDir dir;
  // The same schedule throughout: 100000 steps or 60 s, warmdown 3, so the first hundreds of
  // steps run at lr 1 (and a signal that never arrives costs a minute, not the suite).
  const std::string schedule = " --steps 100000 --max-seconds 60";
  auto r = pgolf("train" + data() + kTiny + schedule + " --stop-at 150 --out " + dir.file("straight"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> expected = losses(r.out);
  ASSERT_EQ(expected.size(), 150u);

  for (int signal : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(strsignal(signal));
    const std::string cut = dir.file("cut" + std::to_string(signal)), rest = dir.file("rest" + std::to_string(signal));
    r = run_and_signal("train" + data() + kTiny + schedule + " --out " + cut, "step 4/", signal);
    EXPECT_EQ(r.exit_code, 128 + signal) << r.out;
    EXPECT_NE(r.out.find(std::string("stopped by ") + strsignal(signal) + " at step"), std::string::npos) << r.out;
    std::vector<std::string> joined = losses(r.out);
    ASSERT_GE(joined.size(), 4u);
    ASSERT_LT(joined.size(), 150u) << "the signal came too late to test a resume";
    r = pgolf("train" + data() + " --device cpu --threads 2 --seq-len 32 --micro-batch 2 --tokens-per-step 128"
              " --warmdown 3" + schedule + " --stop-at 150 --resume " + cut + ".state --out " + rest);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    for (const std::string& loss : losses(r.out)) joined.push_back(loss);
    EXPECT_EQ(joined, expected);
    // Nothing half-written is left beside the outputs.
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  // --save-every writes along the way.
  r = pgolf("train" + data() + kTiny + " --steps 6 --save-every 2 --out " + dir.file("saved"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* step : {"(step 2)", "(step 4)", "(step 6)"}) EXPECT_NE(r.out.find(step), std::string::npos) << r.out;
}

// The val_loss line of pgolf eval's output, or of train's final validation.
std::string val_loss(const std::string& log) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(log, m, std::regex(R"(val_loss +(\S+))"))) << log;
  return m.size() > 1 ? m[1].str() : "";
}

// The val_loss of the log's final validation line (NaN when there is none).
double final_val_loss(const std::string& log) {
  const std::regex final_line(R"(val_loss (\S+) val_bpb \S+ \(final)");
  std::smatch m;
  return std::regex_search(log, m, final_line) ? std::stod(m[1]) : std::nan("");
}

// "val_loss L val_bpb B" of the log's first line holding `tail` after them ("" when none).
std::string scores_before(const std::string& log, const std::string& tail) {
  const size_t end = log.find(" " + tail);
  if (end == std::string::npos) return "";
  const size_t line = log.rfind('\n', end) + 1;  // npos + 1 = 0: the first line
  const size_t start = log.find("val_loss", line);
  return start < end ? log.substr(start, end - start) : "";
}

TEST(CliTrain, TheModelsSettingsTravelWithItsCheckpointAndArtifact) {
  test::TempDir dir;
  const std::string model = dir.file("m");
  auto r = pgolf("train" + data() + " --vocab 1024 --dim 32 --layers 3 --heads 4 --kv-heads 2 --seq-len 64"
                 " --micro-batch 2 --tokens-per-step 256 --warmdown 3 --val-tokens 256 --steps 30 --rope-base 500"
                 " --logit-softcap 10 --activation leaky-relu2:0.5 --device cpu --threads 2 --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const double trained = final_val_loss(r.out);
  const Checkpoint checkpoint = Checkpoint::open({model + ".safetensors"});
  EXPECT_EQ(checkpoint.metadata().at("pgolf.seq_len"), "64");
  EXPECT_EQ(checkpoint.metadata().at("pgolf.rope_base"), "500");
  EXPECT_EQ(checkpoint.metadata().at("pgolf.logit_softcap"), "10");
  EXPECT_EQ(checkpoint.metadata().at("pgolf.activation"), "leaky-relu2:0.5");

  // Unflagged, eval takes the checkpoint's settings: the loss training reported (bf16 weights now),
  // and exactly the loss of the same settings given as flags; another rope base changes it.
  const std::string eval = "eval " + model + ".safetensors" + data() + " --tokens 256 --device cpu --threads 2";
  r = pgolf(eval);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("seq-len 64 (checkpoint), rope-base 500 (checkpoint), logit-softcap 10 (checkpoint)"),
            std::string::npos) << r.out;
  const std::string unflagged = val_loss(r.out);
  EXPECT_NEAR(std::stod(unflagged), trained, 2e-3);
  EXPECT_EQ(val_loss(pgolf(eval + " --seq-len 64 --rope-base 500 --logit-softcap 10").out), unflagged);
  // train's spelling of the count, --val-tokens, means the same in eval.
  EXPECT_EQ(val_loss(pgolf("eval " + model + ".safetensors" + data() + " --val-tokens 256 --device cpu --threads 2").out),
            unflagged);
  r = pgolf(eval + " --rope-base 10000");
  EXPECT_NE(r.out.find("warning: --rope-base 10000 overrides the 500 the checkpoint records"), std::string::npos) << r.out;
  EXPECT_NE(val_loss(r.out), unflagged);
  // --tokens past the val split is said, and scores all of it.
  r = pgolf("eval " + model + ".safetensors" + data() + " --tokens 100000000 --device cpu --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: --tokens asks for 1,562,500 sequences of 64; the val split holds"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(--tokens clamped to the val split)"), std::string::npos) << r.out;
  // An artifact carries them.
  ASSERT_EQ(pgolf("compress " + model + ".safetensors -o " + model + ".pgz --codec fp32").exit_code, 0);
  r = pgolf("eval " + model + ".pgz" + data() + " --tokens 256 --device cpu --threads 2");
  EXPECT_EQ(val_loss(r.out), unflagged) << r.out;
}

// The seed's techniques (partial RoPE, SmearGate v1, BigramHash) train, save under Parameter Golf's
// names, and evaluate from the checkpoint and from its artifact as training did; a resumed run
// keeps them and a flag that changes them is refused.
TEST(CliTrain, TheSeedTechniquesTravelWithTheCheckpoint) {
  test::TempDir dir;
  const std::string model = dir.file("m");
  const std::string seed = " --rope-dims 4 --rope-table bf16 --smear-gate v1 --bigram-buckets 64 --bigram-dim 16";
  auto r = pgolf("train" + data() + with_flag(kTiny, "val-tokens", "256") + seed + " --steps 20 --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("RoPE on 4 dims, RoPE table bf16, SmearGate v1, BigramHash 64x16"), std::string::npos) << r.out;
  const double trained = final_val_loss(r.out);
  const Checkpoint checkpoint = Checkpoint::open({model + ".safetensors"});
  EXPECT_EQ(checkpoint.metadata().at("pgolf.rope_dims"), "4");
  EXPECT_EQ(checkpoint.metadata().at("pgolf.rope_table"), "bf16");
  EXPECT_EQ(checkpoint.at("smear.gate").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(checkpoint.at("bigram.embed.weight").shape, (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(checkpoint.at("bigram.proj.weight").shape, (std::vector<int64_t>{32, 16}));
  EXPECT_TRUE(checkpoint.at("bigram.scale").shape.empty());
  // The table learned: it starts at zero.
  const std::vector<float> table = checkpoint.at("bigram.embed.weight").to_floats();
  EXPECT_GT(*std::max_element(table.begin(), table.end()), 0.0f);

  const std::string eval = "eval " + model + ".safetensors" + data() + " --tokens 256 --device cpu --threads 2";
  r = pgolf(eval);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string unflagged = val_loss(r.out);
  EXPECT_NEAR(std::stod(unflagged), trained, 2e-3);
  ASSERT_EQ(pgolf("compress " + model + ".safetensors -o " + model + ".pgz").exit_code, 0);
  r = pgolf("eval " + model + ".pgz" + data() + " --tokens 256 --device cpu --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NEAR(std::stod(val_loss(r.out)), trained, 0.05) << r.out;

  // Stopped at step 3 and resumed: the straight run's losses (SmearGate v2 here, masked at BOS).
  const std::string v2 = " --rope-dims 4 --smear-gate v2 --bigram-buckets 64 --bigram-dim 16";
  r = pgolf("train" + data() + kTiny + v2 + " --steps 6 --out " + dir.file("straight"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> expected = losses(r.out);
  r = pgolf("train" + data() + kTiny + v2 + " --steps 6 --stop-at 3 --out " + dir.file("first"));
  std::vector<std::string> split = losses(r.out);
  r = pgolf("train" + data() + kTiny + v2 + " --steps 6 --resume " + dir.file("first.state") + " --out " +
            dir.file("more"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("RoPE on 4 dims, SmearGate v2, BigramHash 64x16"), std::string::npos) << r.out;
  for (const std::string& loss : losses(r.out)) split.push_back(loss);
  EXPECT_EQ(split, expected);
  ASSERT_EQ(expected.size(), 6u);
  r = pgolf("train" + data() + kTiny + " --rope-dims 4 --smear-gate v1 --bigram-buckets 64 --bigram-dim 16 --steps 22 --resume " +
            model + ".state --out " + dir.file("other"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("is not the one asked for"), std::string::npos) << r.out;
}

// Depth recurrence trains, starts its loop at --loop-from (said in the log), saves the loop in the
// checkpoint (eval runs it: the loss training reported) and resumes bitwise across the start.
TEST(CliTrain, LoopedBlocksTrainEvaluateAndResume) {
  test::TempDir dir;
  const std::string loop = " --loop-layers 1..2 --loops 2 --loop-from 0.5";
  auto r = pgolf("train" + data() + with_flag(kTiny, "val-tokens", "256") + loop + " --steps 6 --out " + dir.file("straight"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("blocks 1..2 looped 2x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step 3: the loop of blocks 1..2 starts"), std::string::npos) << r.out;
  const std::vector<std::string> expected = losses(r.out);
  const double trained = final_val_loss(r.out);
  const Checkpoint checkpoint = Checkpoint::open({dir.file("straight.safetensors")});
  EXPECT_EQ(checkpoint.metadata().at("pgolf.loop_layers"), "1..2");
  EXPECT_EQ(checkpoint.metadata().at("pgolf.loops"), "2");
  EXPECT_EQ(checkpoint.at("skip_weights").shape, (std::vector<int64_t>{2, 32}));  // 5 virtual layers
  r = pgolf("eval " + dir.file("straight.safetensors") + data() + " --tokens 256 --device cpu --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NEAR(std::stod(val_loss(r.out)), trained, 2e-3) << r.out;

  r = pgolf("train" + data() + kTiny + loop + " --steps 6 --stop-at 2 --out " + dir.file("first"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> split = losses(r.out);
  r = pgolf("train" + data() + kTiny + loop + " --steps 6 --resume " + dir.file("first.state") + " --out " +
            dir.file("more"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const std::string& loss : losses(r.out)) split.push_back(loss);
  EXPECT_EQ(split, expected);
  // Multi-token heads train, live in the state (resume keeps them) and never reach the checkpoint.
  r = pgolf("train" + data() + kTiny + " --mtp 3 --mtp-weight 0.3 --steps 4 --stop-at 2 --out " + dir.file("mtp"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("2 multi-token heads at 0.3"), std::string::npos) << r.out;
  EXPECT_EQ(Checkpoint::open({dir.file("mtp.safetensors")}).find("mtp.0.weight"), nullptr);
  r = pgolf("train" + data() + kTiny + " --mtp 3 --mtp-weight 0.3 --steps 4 --resume " + dir.file("mtp.state") +
            " --out " + dir.file("mtp2"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = pgolf("eval " + dir.file("mtp2.safetensors") + data() + " --tokens 64 --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  // Shared blocks: --shared-blocks K stands for K layers looped whole.
  r = pgolf("train" + data() + kTiny + " --shared-blocks 2 --loops 3 --steps 2 --out " + dir.file("shared"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("2 layers, dim 32, 4 heads / 2 KV heads, MLP 64, vocab 1024, blocks 0..1 looped 3x"),
            std::string::npos) << r.out;
  // --qk-gain-init: every head's q_gain starts there (one Adam step at lr 0.04 moves it by at most that).
  r = pgolf("train" + data() + kTiny + " --qk-gain-init 5 --steps 1 --out " + dir.file("gain"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const float gain : Checkpoint::open({dir.file("gain.safetensors")}).at("blocks.1.attn.q_gain").to_floats())
    EXPECT_NEAR(gain, 5.0f, 0.045f);
  // Parallel lanes train, travel as blocks.N.lanes (eval finds them there) and resume.
  r = pgolf("train" + data() + with_flag(kTiny, "val-tokens", "256") + " --parallel-from 1 --steps 4 --stop-at 2 --out " +
            dir.file("lanes"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("parallel lanes from block 1"), std::string::npos) << r.out;
  r = pgolf("train" + data() + with_flag(kTiny, "val-tokens", "256") + " --parallel-from 1 --steps 4 --resume " +
            dir.file("lanes.state") + " --out " + dir.file("lanes2"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(Checkpoint::open({dir.file("lanes2.safetensors")}).at("blocks.2.lanes").shape, (std::vector<int64_t>{3, 2}));
  const double lanes_trained = final_val_loss(r.out);
  r = pgolf("eval " + dir.file("lanes2.safetensors") + data() + " --tokens 256 --device cpu --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NEAR(std::stod(val_loss(r.out)), lanes_trained, 2e-3) << r.out;
}

// --ema D: the final validation and the checkpoint are the weights' moving average (eval of the
// checkpoint gives the final number), not the weights themselves.
TEST(CliTrain, TheMovingAverageIsWhatTheRunSaves) {
  test::TempDir dir;
  const std::string run = "train" + data() + with_flag(kTiny, "val-tokens", "256") + " --steps 6 --out ";
  auto r = pgolf(run + dir.file("ema") + " --ema 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(final, the weights' average, 256 tokens)"), std::string::npos) << r.out;
  const double averaged = final_val_loss(r.out);
  const std::string weights = scores_before(r.out, "(the weights themselves, not the checkpoint)");
  ASSERT_NE(weights, "") << r.out;
  r = pgolf("eval " + dir.file("ema.safetensors") + data() + " --tokens 256 --device cpu --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NEAR(std::stod(val_loss(r.out)), averaged, 2e-3) << r.out;
  r = pgolf(run + dir.file("plain"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_GT(std::abs(final_val_loss(r.out) - averaged), 1e-3) << r.out;
  // The average does not touch training: the weights it was kept beside are the plain run's.
  EXPECT_EQ(scores_before(r.out, "(final, 256 tokens)"), weights) << r.out;
  // --ema-from 0.5: the average starts at step 3 of 6, from the weights there, not the initialisation.
  r = pgolf(run + dir.file("late") + " --ema 0.5 --ema-from 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("step 3: the weights' average starts"), std::string::npos) << r.out;
  EXPECT_GT(std::abs(final_val_loss(r.out) - averaged), 1e-4) << r.out;
  EXPECT_EQ(scores_before(r.out, "(the weights themselves, not the checkpoint)"), weights) << r.out;
}

// --init FILE: the run starts from the file's weights, not the seed's (a run of 0 steps writes them
// back bit for bit, whatever --seed says); a file of another shape, --init with --resume and
// --init with --qk-gain-init are one-line errors that write nothing.
TEST(CliTrain, InitStartsFromTheCheckpointsWeights) {
  test::TempDir dir;
  const std::string run = "train" + data() + kTiny + " --steps 0 --out ";
  ASSERT_EQ(pgolf(run + dir.file("start")).exit_code, 0);
  const std::string start = dir.file("start.safetensors");
  auto r = pgolf(run + dir.file("again") + " --seed 99 --init " + start);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(test::read_bytes(dir.file("again.safetensors")), test::read_bytes(start));
  ASSERT_EQ(pgolf(run + dir.file("seeded") + " --seed 99").exit_code, 0);
  EXPECT_NE(test::read_bytes(dir.file("seeded.safetensors")), test::read_bytes(start));
  // Trained from the file: three steps from it equal three steps resumed from the state it was written with
  // (whose weights the file holds in bf16, here exactly: a run of 0 steps from an --init of bf16 values).
  ASSERT_EQ(pgolf(run + dir.file("exact") + " --init " + start).exit_code, 0);
  const std::string steps = "train" + data() + kTiny + " --steps 3 --out ";
  r = pgolf(steps + dir.file("from_init") + " --init " + start);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto resumed = pgolf(steps + dir.file("from_state") + " --resume " + dir.file("exact.state"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  EXPECT_EQ(test::read_bytes(dir.file("from_init.safetensors")), test::read_bytes(dir.file("from_state.safetensors")));
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {with_flag(kTiny, "mlp-mult", "3") + " --init " + start, "blocks.0.mlp.fc.weight: expected shape [96, 32]"},
           {kTiny + " --init " + start + " --resume " + dir.file("exact.state"), "--init starts a run from weights"},
           {kTiny + " --init " + start + " --qk-gain-init 4", "--qk-gain-init: --init's weights hold q_gain"}}) {
    r = pgolf("train" + data() + flags + " --steps 1 --out " + dir.file("bad"));
    EXPECT_NE(r.exit_code, 0) << flags;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir.file("bad.safetensors"))) << flags;
  }
}

// eval --ttt sgd: the plain and sliding numbers, then the score-first TTT one over the sliding
// windows; --ttt lora adds the documents' number; TTT flags without their --ttt, and bad TTT
// settings, are one-line errors.
TEST(CliTrain, EvalWithTestTimeTrainingReportsEveryStage) {
  test::TempDir dir;
  ASSERT_EQ(pgolf("train" + data() + kTiny + " --steps 4 --out " + dir.file("m")).exit_code, 0);
  const std::string eval = "eval " + dir.file("m.safetensors") + data() + " --tokens 256 --device cpu --threads 2";
  auto sliding = pgolf(eval + " --stride 8");
  ASSERT_EQ(sliding.exit_code, 0) << sliding.out;
  auto r = pgolf(eval + " --stride 8 --ttt sgd --ttt-chunk 64 --ttt-lr 0.05 --ttt-batch 2 --ttt-freeze 1");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("ttt         SGD over chunks of 64 targets, lr 0.05 (cosine)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("plain       val_loss "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sliding     val_loss " + val_loss(sliding.out)), std::string::npos) << r.out;
  EXPECT_NE(val_loss(r.out), val_loss(sliding.out)) << r.out;
  // --ttt lora: plain, sliding, the documents without adapting, then with per-document LoRA.
  r = pgolf(eval + " --stride 8 --ttt lora --ttt-chunk 8 --ttt-lr 0.05 --ttt-lora-rank 2 --ttt-lora-matrices "
                   "'attn.c_q;mlp.fc' --ttt-lora-betas 0,0.999 --ttt-lora-wd 0.5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("ttt         per-document LoRA rank 2 (alpha 8) on attn.c_q;mlp.fc, chunks of 8 targets, AdamW "
                       "lr 0.05 betas (0, 0.999), weight decay 0.5"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sliding     val_loss " + val_loss(sliding.out)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("documents   val_loss "), std::string::npos) << r.out;
  EXPECT_NE(val_loss(r.out), val_loss(sliding.out)) << r.out;
  for (const auto& [flags, message] : std::vector<std::pair<std::string, std::string>>{
           {" --ttt-lr 0.01", "--ttt-lr needs --ttt sgd or lora"},
           {" --ttt adam", "--ttt adam: none, sgd or lora"},
           {" --ttt lora --ttt-epochs 2", "--ttt-epochs needs --ttt sgd"},
           {" --ttt sgd --ttt-lora-rank 4", "--ttt-lora-rank needs --ttt lora"},
           {" --ttt sgd --ttt-lora-wd 0.5", "--ttt-lora-wd needs --ttt lora"},
           {" --ttt lora --ttt-lora-betas 0.9", "--ttt-lora-betas 0.9: B1,B2"},
           {" --ttt lora --ttt-lora-betas 1,0.9", "--ttt-lora-betas: Adam's betas lie in [0, 1)"},
           {" --ttt lora --ttt-chunk 64", "--ttt-chunk 64 for --ttt lora: 1 to the sequence length 32"},
           {" --ttt lora --ttt-lora-matrices attn.c_x", "--ttt-lora-matrices: attn.c_x is none of"},
           {" --ttt lora --ttt-lora-rank 0", "--ttt-lora-rank must be positive"},
           {" --ttt sgd --ttt-freeze 9", "--ttt-freeze 9: 0 to the model's 3 blocks"},
           {" --ttt sgd --ttt-chunk 0", "--ttt-chunk must be positive"},
           {" --precision bf16", "--precision bf16 is for --device cuda (the CPU is fp32)"}}) {
    r = pgolf(eval + flags);
    EXPECT_EQ(r.exit_code, 2) << flags << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
  }
}

// --calibrate N: the Hessians of the saved weights, as pgolf calibrate computes them from the
// checkpoint on the same train tokens, tensor for tensor.
TEST(CliTrain, CalibrateWritesTheSavedWeightsHessians) {
  test::TempDir dir;
  const std::string model = dir.file("m");
  auto r = pgolf("train" + data() + kTiny + " --steps 4 --calibrate 200 --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("calibrated 19 matrices on 224 train tokens"), std::string::npos) << r.out;  // 7 windows of 32; 6 per block and the head
  r = pgolf("calibrate " + model + ".safetensors" + data() + " --tokens 200 --device cpu --threads 2 -o " +
            dir.file("h.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Checkpoint trained = Checkpoint::open({model + ".h.safetensors"}), separate = Checkpoint::open({dir.file("h.safetensors")});
  ASSERT_EQ(trained.tensors().size(), 19u);
  ASSERT_EQ(trained.tensors().size(), separate.tensors().size());
  for (const auto& t : separate.tensors()) EXPECT_EQ(trained.at(t.name).to_floats(), t.to_floats()) << t.name;
  EXPECT_EQ(trained.metadata().at("model"), model + ".safetensors");
  // Too few train tokens is refused before training.
  r = pgolf("train" + data() + kTiny + " --steps 4 --calibrate 100000000000 --out " + dir.file("n"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("calibration needs"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("n.safetensors")));
}

// samples/configs/baseline.json is today's defaults: under the tiny model's flags (which beat the
// file) the same losses as no config at all; every preset there is accepted.
TEST(CliTrain, TheBaselinePresetIsTheDefaults) {
  test::TempDir dir;
  const std::string tiny = data() + with_flag(kTiny, "warmdown", "2") + " --steps 3";
  auto plain = pgolf("train" + tiny + " --out " + dir.file("a"));
  auto preset = pgolf("train" + tiny + " --config " + test::sample_path("configs/baseline.json") + " --out " +
                      dir.file("b"));
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  ASSERT_EQ(preset.exit_code, 0) << preset.out;
  ASSERT_EQ(losses(plain.out).size(), 3u);
  EXPECT_EQ(losses(plain.out), losses(preset.out));
  // 11 layers and head_dim 16 take every preset's loop range, XSA and partial RoPE.
  const std::string preset_shape = with_flag(with_flag(with_flag(with_flag(tiny, "steps", "1"), "layers", "11"), "heads", "2"),
                                             "kv-heads", "1");
  for (const auto& entry : std::filesystem::directory_iterator(test::sample_path("configs"))) {
    auto r = pgolf("train" + preset_shape + " --config " + entry.path().string() + " --out " + dir.file("c") +
                   " --overwrite");
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.out;
  }
  // A second config overlays the first (samples/configs/one-gpu.json on a preset); the flags win over both.
  std::ofstream(dir.file("two-steps.json")) << R"({"steps": 2, "warmdown": 1})";
  auto overlaid = pgolf("train" + data() + kTiny + " --config " + test::sample_path("configs/baseline.json") +
                        " --config " + dir.file("two-steps.json") + " --out " + dir.file("e"));
  ASSERT_EQ(overlaid.exit_code, 0) << overlaid.out;
  EXPECT_EQ(losses(overlaid.out).size(), 2u) << overlaid.out;
  auto flag_wins = pgolf("train" + data() + kTiny + " --config " + dir.file("two-steps.json") + " --steps 1 --out " +
                         dir.file("f"));
  ASSERT_EQ(flag_wins.exit_code, 0) << flag_wins.out;
  EXPECT_EQ(losses(flag_wins.out).size(), 1u) << flag_wins.out;
  // A preset's technique turns off by a flag (its other keys still known).
  auto r = pgolf("train" + with_flag(tiny, "steps", "1") + " --config " + test::sample_path("configs/pr212.json") +
                 " --bigram-buckets 0 --out " + dir.file("d"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("SmearGate v1, initialised"), std::string::npos) << r.out;
}

TEST(CliTrain, BadInputIsRefusedBeforeTrainingAndWritesNothing) {
  test::TempDir dir, empty;
  std::ofstream(dir.file("config.json")) << R"({"dim": 32, "warmup": 5})";
  std::ofstream(dir.file("typo.json")) << R"({"muon-momentm": 0.9})";
  const std::string out = " --out " + dir.file("run");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train" + data() + with_flag(kTiny, "heads", "3") + out, "not a multiple of 3 heads"},
      {"train --data " + empty.path().string() + kTiny + out, "no *_train_*.bin token shards"},
      {"train" + data() + with_flag(kTiny, "vocab", "2048") + out, "model vocab 2048 != the vocab 1024"},
      {"train" + data() + with_flag(kTiny, "tokens-per-step", "100") + out, "not a multiple of --micro-batch"},
      {"train" + data() + kTiny + " --seed 1 --seed 2" + out, "--seed given 2 times"},
      {"train" + data() + kTiny + " --config " + dir.file("config.json") + out, "unknown setting 'warmup'"},
      {"train" + data() + kTiny + " --config " + dir.file("typo.json") + out,
       "unknown setting 'muon-momentm' (did you mean 'muon-momentum'?)"},
      {"train" + data() + kTiny + " --config " + test::sample_path("configs/baseline.json") + " --config " +
           dir.file("typo.json") + out,
       "unknown setting 'muon-momentm'"},
      {"train" + data() + kTiny + " --resume " + test::sample_path("sp1024/corpus_1024_bpe.model") + out,
       "corpus_1024_bpe.model"},
      {"train" + data() + kTiny + " --gpus 2" + out, "--gpus trains on GPUs; it cannot run with --device cpu"},
      {"train" + data() + kTinyModel + " --gpus 3" + out, "--gpus 3 must divide the 2 micro-batches of a step"},
      {"train" + data() + kTiny + " --precision bf16" + out, "--precision bf16 is for --device cuda"},
      {"train" + data() + kTiny + " --precision fp16" + out, "--precision must be auto, fp32, tf32 or bf16"},
      {"train" + data() + kTiny + " --activation gelu" + out, "relu2 or leaky-relu2:S with 0 < S < 1"},
      {"train" + data() + kTiny + " --activation leaky-relu2:1.5" + out, "relu2 or leaky-relu2:S"},
      {"train" + data() + kTiny + " --calibrate -5" + out, "--calibrate must not be negative"},
      {"train" + data() + kTiny + " --bigram-buckets 1" + out, "--bigram-buckets 1: 0 (none) or 2 to 65536"},
      {"train" + data() + kTiny + " --bigram-buckets 64 --bigram-dim 0" + out, "BigramHash needs 2 to 65536 buckets"},
      {"train" + data() + kTiny + " --bigram-dim 16" + out, "--bigram-dim needs --bigram-buckets"},
      {"train" + data() + kTiny + " --rope-dims 10" + out, "partial RoPE rotates an even number of dims up to the head dim 8"},
      {"train" + data() + kTiny + " --xsa-layers 4" + out, "XSA on the last 4 layers of 3"},
      {"train" + data() + kTiny + " --smear-gate v3" + out, "SmearGate 'v3': none, v1, v2 or v2-unmasked"},
      {"train" + data() + kTiny + " --loop-layers 1..3 --loops 2" + out, "the loop range 1..3 is outside the 3 layers"},
      {"train" + data() + kTiny + " --loop-layers 2..1 --loops 2" + out, "loop layers '2..1': A..B with 0 <= A <= B"},
      {"train" + data() + kTiny + " --loops 2" + out, "--loops 2 needs --loop-layers A..B or --shared-blocks K"},
      {"train" + data() + kTiny + " --loop-layers 0..1" + out, "need --loops N of at least 2 passes"},
      {"train" + data() + kTiny + " --shared-blocks 2 --loop-layers 0..1 --loops 2" + out, "one or the other"},
      {"train" + data() + kTiny + " --loop-from 0.5" + out, "--loop-from needs depth recurrence"},
      {"train" + data() + kTiny + " --mtp 1" + out, "--mtp 1: K >= 2 (predict up to token t+K), or 0 for none"},
      {"train" + data() + kTiny + " --mtp-weight 0.3" + out, "--mtp-weight needs --mtp K"},
      {"train" + data() + kTiny + " --mtp 2 --mtp-weight 0" + out, "multi-token heads with a positive weight"},
      {"train" + data() + kTiny + " --shared-blocks 2 --loops 2 --loop-from 1.5" + out, "--loop-from is a fraction"},
      {"train" + data() + kTiny + " --parallel-from 3" + out, "parallel lanes from block 3 of 3"},
      {"train" + data() + kTiny + " --qk-gain-init 0" + out, "--qk-gain-init must be positive"},
      {"train" + data() + kTiny + " --ema 1" + out, "--ema is a decay in [0, 1)"},
      {"train" + data() + kTiny + " --ema-from 0.5" + out, "--ema-from and --ema-warmup need an average (--ema)"},
      {"train" + data() + kTiny + " --ema-warmup" + out, "--ema-from and --ema-warmup need an average (--ema)"},
      {"train" + data() + kTiny + " --ema 0.5 --ema-from 1" + out, "--ema-from is a fraction of training in [0, 1)"},
      {"train" + data() + kTiny + " --ns-coefficients quintic" + out, "--ns-coefficients quintic: stock or polar-express"},
      {"train" + data() + kTiny + " --lr-floor 2" + out, "--lr-floor is a fraction"},
      {"train" + data() + kTiny + " --embed-wd -1" + out, "--embed-wd and --scalar-wd must not be negative"},
      {"train" + data() + kTiny + " --loop-layers 1..1 --loops 2 --parallel-from 1" + out, "after the looped blocks"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = pgolf(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "one line: " << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("run.safetensors")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("run.state")));

  std::ofstream(dir.file("run.state")) << "keep";
  const auto r = pgolf("train" + data() + kTiny + " --steps 1" + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("pass --overwrite"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_bytes(dir.file("run.state")).size(), 4u);
}

#ifdef PGOLF_HAVE_CUDA
// --gpus 1 runs one rank process with a one-rank NCCL group: the lone trainer's losses, bitwise.
// With two GPUs, --gpus 2 (one micro-batch each) follows them up to the order of the sums.
TEST(CliTrain, DataParallelRunsFollowTheOneGpuRun) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU";
  test::TempDir dir;
  const std::string run = "train" + data() + kTinyModel + " --device cuda --steps 6";
  auto r = pgolf(run + " --out " + dir.file("alone"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> expected = losses(r.out);
  ASSERT_EQ(expected.size(), 6u) << r.out;
  r = pgolf(run + " --gpus 1 --out " + dir.file("one"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("rank 0 of 1"), std::string::npos) << r.out;
  EXPECT_EQ(losses(r.out), expected);
  EXPECT_EQ(test::read_bytes(dir.file("one.safetensors")), test::read_bytes(dir.file("alone.safetensors")));

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) GTEST_SKIP() << "--gpus 2 needs 2 GPUs";
  r = pgolf(run + " --gpus 2 --out " + dir.file("two"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::vector<std::string> two = losses(r.out);
  ASSERT_EQ(two.size(), expected.size()) << r.out << "\nonly rank 0 logs";
  for (size_t i = 0; i < two.size(); ++i) EXPECT_NEAR(std::stod(two[i]), std::stod(expected[i]), 1e-4) << i;
}
#endif

}  // namespace
}  // namespace pgolf

// The pgolf binary as a user runs it: exit codes, one-line errors, nothing half-written,
// inputs untouched, and decompress(compress(x)) equal to the codec's values.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <nlohmann/json.hpp>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "cli/format.h"
#include "core/spec.h"
#include "cli/run_pgolf.h"
#include "plan/plan.h"
#include "quant/tensor_codec.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

// A small real checkpoint: four tensors of base9 (as bf16 safetensors), so CLI tests stay fast.
std::string small_checkpoint(const test::TempDir& dir) {
  return test::base9_subset(dir, {"blocks.0.attn.c_q.weight", "blocks.0.mlp.fc.weight", "blocks.0.attn.q_gain", "skip_weights"},
                            "small.safetensors");
}

TEST(Cli, CompressDecompressIsExactAndInputIsUntouched) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir);
  auto before = test::read_bytes(in);
  for (const char* codec : {"int6", "int5:clip=quantile:0.9999", "int8:clip=mse"}) {
    std::string pgz = dir.file("a.pgz"), out = dir.file("a.safetensors");
    auto r = pgolf("compress " + in + " -o " + pgz + " --codec " + codec + " --compressor zstd:3 --force");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("blocks.0.attn.c_q.weight"), std::string::npos);
    EXPECT_NE(r.out.find("bits/parameter"), std::string::npos);
    r = pgolf("decompress " + pgz + " -o " + out + " --force");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto original = Checkpoint::open({in});
    auto decoded = Checkpoint::open({out});
    Plan plan(codec, {});
    ASSERT_EQ(decoded.tensors().size(), original.tensors().size());
    for (const auto& t : original.tensors()) {
      auto c = make_tensor_codec(plan.codec_for(t.name, t.dtype, t.shape));
      auto expected = decode_streams(*c, c->encode(t.to_floats(), TensorShape{t.shape}), TensorShape{t.shape});
      auto got = decoded.at(t.name).to_floats();
      EXPECT_TRUE(decoded.at(t.name).dtype == DType::F32 || decoded.at(t.name).dtype == t.dtype) << t.name;
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * 4)) << codec << " " << t.name;
    }
  }
  EXPECT_EQ(test::read_bytes(in), before);
}

// decompress writes each tensor in its checkpoint's dtype where that holds the decoded values
// exactly (--dtype auto): a lossless artifact of base9 (bf16) comes back byte for byte; quantized
// tensors come back fp32, exact; --dtype fp32 writes every float tensor fp32.
TEST(Cli, DecompressKeepsTheCheckpointsDtypeWhereExact) {
  test::TempDir dir;
  const std::string base9 = test::sample_path("base9");
  ASSERT_EQ(pgolf("compress " + base9 + " -o " + dir.file("l.pgz") + " --codec lossless --compressor zstd:1").exit_code, 0);
  auto r = pgolf("decompress " + dir.file("l.pgz") + " -o " + dir.file("l.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("(92 BF16)"), std::string::npos) << r.out;
  const Checkpoint original = Checkpoint::open({base9}), lossless = Checkpoint::open({dir.file("l.safetensors")});
  for (const auto& t : original.tensors()) {
    EXPECT_EQ(lossless.at(t.name).dtype, t.dtype) << t.name;
    EXPECT_EQ(lossless.at(t.name).to_floats(), t.to_floats()) << t.name;
  }
  ASSERT_EQ(pgolf("compress " + base9 + " -o " + dir.file("q.pgz") + " --compressor zstd:1").exit_code, 0);
  r = pgolf("decompress " + dir.file("q.pgz") + " -o " + dir.file("q.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = pgolf("decompress " + dir.file("q.pgz") + " -o " + dir.file("f.safetensors") + " --dtype fp32");
  EXPECT_NE(r.out.find("(92 F32)"), std::string::npos) << r.out;
  const Checkpoint quantized = Checkpoint::open({dir.file("q.safetensors")}), wide = Checkpoint::open({dir.file("f.safetensors")});
  EXPECT_EQ(quantized.at("blocks.0.mlp.fc.weight").dtype, DType::F32);  // int6 steps: not all bf16 values
  EXPECT_EQ(quantized.at("blocks.0.attn_scale").dtype, DType::BF16);
  for (const auto& t : wide.tensors()) EXPECT_EQ(quantized.at(t.name).to_floats(), t.to_floats()) << t.name;
}

// A codec parameter lowered to fit the tensors is said: once per spec, naming the first tensor.
TEST(Cli, AClampedRankIsAWarning) {
  test::TempDir dir;
  const std::string in = small_checkpoint(dir);
  auto r = pgolf("compress " + in + " --dry-run --codec int6+lrcorr:rank=100000 --compressor zstd:3");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: int6+lrcorr:rank=100000 does not fit 2 tensors as written "
                       "(blocks.0.attn.c_q.weight [512, 512]: rank 100000 -> 512)"),
            std::string::npos) << r.out;
  r = pgolf("compress " + in + " --dry-run --codec int6+lrcorr:rank=4 --compressor zstd:3");
  EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;
}

// pgolf codecs lists every codec row and example; on a checkpoint each example gets its stored bits
// per parameter and relative error (int8 costs more bits than int4 and errs less), and the ones it
// cannot measure there say why.
TEST(Cli, CodecsListsAndMeasuresEveryExample) {
  test::TempDir dir;
  auto r = pgolf("codecs");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const auto& row : tensor_codec_table()) {
    EXPECT_NE(r.out.find(row.usage), std::string::npos) << row.usage;
    for (const auto& example : row.examples) EXPECT_NE(r.out.find("  " + example + "\n"), std::string::npos) << example;
  }
  r = pgolf("codecs " + small_checkpoint(dir) + " --tensors c_q");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("measured on 1 tensor (blocks.0.attn.c_q.weight), 262,144 parameters"), std::string::npos) << r.out;
  auto numbers = [&](const std::string& example) {
    const std::regex line("  " + example + R"( +([0-9.]+) bits  rel_mse ([0-9.e+-]+))");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(r.out, m, line)) << example << "\n" << r.out;
    return m.size() == 3 ? std::pair{std::stod(m[1]), std::stod(m[2])} : std::pair{0.0, 0.0};
  };
  const auto [int8_bits, int8_error] = numbers("int8");
  const auto [int4_bits, int4_error] = numbers("int4:clip=quantile:0\\.999");
  EXPECT_GT(int8_bits, int4_bits);
  EXPECT_LT(int8_error, int4_error);
  EXPECT_GT(int4_bits, 1.0);
  EXPECT_NE(r.out.find("gptq needs its calibration Hessian"), std::string::npos) << r.out;
  EXPECT_EQ(pgolf("codecs --tensors c_q").exit_code, 2);
}

TEST(Cli, JsonDryRunAndInspect) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir);
  auto r = pgolf("compress " + in + " --dry-run --json --compressor zlib:9");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tensors"].size(), 4u);
  EXPECT_FALSE(j["written"].get<bool>());
  EXPECT_GT(j["artifact_bytes"].get<uint64_t>(), 100000u);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()) == false);
  std::string pgz = dir.file("b.pgz");
  ASSERT_EQ(pgolf("compress " + in + " -o " + pgz).exit_code, 0);
  r = pgolf("inspect " + pgz);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("checksums ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("streams B      stored B"), std::string::npos) << r.out;  // a header row
  const int64_t headroom = 16000000 - static_cast<int64_t>(std::filesystem::file_size(pgz));
  EXPECT_NE(r.out.find(cli::with_commas(static_cast<uint64_t>(headroom)) + " B left for the code"), std::string::npos) << r.out;
  // Per tensor, its share of the groups' stored bytes: the shares add up to them (to rounding).
  auto inspected = nlohmann::json::parse(pgolf("inspect --json " + pgz).out);
  int64_t shares = 0, groups = 0;
  for (const auto& t : inspected["tensors"]) shares += t["stored_bytes"].get<int64_t>();
  for (const auto& g : inspected["groups"]) groups += g["stored_size"].get<int64_t>();
  EXPECT_NEAR(static_cast<double>(shares), static_cast<double>(groups), 4.0);
  EXPECT_EQ(inspected["headroom_to_16000000"].get<int64_t>(), headroom);
  r = pgolf("inspect --json " + in);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tensors"].size(), 4u);
  // An artifact larger than its bf16 checkpoint says so, as does a group its byte codec grew.
  r = pgolf("compress " + in + " --dry-run --codec fp32 --compressor none");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("x LARGER than the checkpoint"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("x smaller"), std::string::npos) << r.out;
  r = pgolf("compress " + in + " --dry-run --codec int6 --compressor zstd:1");
  EXPECT_NE(r.out.find("x smaller"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("grew"), std::string::npos) << r.out;
  r = pgolf("compress " + in + " --dry-run --rule 'q_gain=bf16' --compressor zstd:22");  // 16 B under a zstd frame
  EXPECT_NE(r.out.find("16 B -> "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("grew: --compressor none or auto stores it smaller"), std::string::npos) << r.out;
  // A rule that matches nothing is said (and changes nothing).
  r = pgolf("compress " + in + " --dry-run --rule 'no_such_tensor=int8'");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: --rule 'no_such_tensor=int8' matches no tensor"), std::string::npos) << r.out;
}

TEST(Cli, BudgetThatCannotBeMetWritesNothing) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir), pgz = dir.file("c.pgz");
  auto r = pgolf("compress " + in + " -o " + pgz + " --budget 1000");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("over the budget of 1,000"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(pgz));
  r = pgolf("compress " + in + " -o " + pgz + " --budget 16MB");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(pgz));
}

// What ships with the artifact counts: --code files join --budget and the printed total; under
// --profile python every stream group is one the exported decoder reads, and that decoder is the
// source file itself (its packed form smaller).
TEST(Cli, CodeCountsInTheBudgetAndThePythonProfileKeepsToItsDecoder) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir), pgz = dir.file("p.pgz"), decoder = dir.file("pgolf_decode.py");
  auto r = pgolf("export-decoder -o " + decoder);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(test::read_bytes(decoder), test::read_bytes(test::source_dir() + "/python/pgolf_decode.py"));
  ASSERT_EQ(pgolf("export-decoder --packed -o " + dir.file("packed.py")).exit_code, 0);
  const uint64_t code = std::filesystem::file_size(decoder), packed = std::filesystem::file_size(dir.file("packed.py"));
  EXPECT_LT(packed, code / 2) << "xz and base85 of the source";
  EXPECT_NE(r.out.find(cli::with_commas(packed) + " B"), std::string::npos) << r.out;

  r = pgolf("compress " + in + " -o " + pgz + " --profile python --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const uint64_t artifact = j["artifact_bytes"].get<uint64_t>();
  for (const auto& g : j["groups"])
    for (const auto& stage : parse_spec(g["codec"].get<std::string>()))
      EXPECT_TRUE(stage.name == "vrans" || stage.name == "zlib" || stage.name == "xz" || stage.name == "shuffle" ||
                  stage.name == "rotate" || stage.name == "none") << g["codec"];

  const std::string budget = std::to_string(artifact + code - 1);
  r = pgolf("compress " + in + " -o " + dir.file("q.pgz") + " --profile python --code " + decoder + " --budget " + budget);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("the artifact and its code are " + cli::with_commas(artifact + code) + " bytes, 1 over"), std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("q.pgz")));
  r = pgolf("compress " + in + " -o " + dir.file("q.pgz") + " --profile python --code " + decoder + " --budget " +
            std::to_string(artifact + code));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // "pg" is Parameter Golf's cap.
  const auto pg = pgolf("compress " + in + " --dry-run --code " + decoder + " --budget pg");
  EXPECT_EQ(pg.exit_code, 0) << pg.out;
  EXPECT_NE(pg.out.find(" of 16,000,000"), std::string::npos) << pg.out;
  EXPECT_NE(r.out.find("artifact + code = " + cli::with_commas(artifact) + " + " + cli::with_commas(code) + " = " +
                       cli::with_commas(artifact + code) + " B of " + cli::with_commas(artifact + code)),
            std::string::npos)
      << r.out;
  EXPECT_EQ(test::read_bytes(dir.file("q.pgz")), test::read_bytes(pgz));
}

std::string read_text(const std::string& path) {
  auto bytes = test::read_bytes(path);
  return {bytes.begin(), bytes.end()};
}

// The plan is data: --save-plan writes what was built (from --auto too, fitted specs resolved),
// --plan replays it to the same bytes, and an edited plan is what gets built.
TEST(Cli, PlansAreSavedReplayedAndEdited) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir), plan = dir.file("plan.json");
  auto r = pgolf("compress " + in + " -o " + dir.file("a.pgz") + " --auto --budget 400000 --candidates "
                 "'int4;int8;ecsq:totalrelmse=0.001' --save-plan " + plan);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = pgolf("compress " + in + " -o " + dir.file("b.pgz") + " --plan " + plan);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(test::read_bytes(dir.file("b.pgz")), test::read_bytes(dir.file("a.pgz"))) << "the replay builds the same bytes";
  auto j = nlohmann::json::parse(read_text(plan));
  ASSERT_EQ(j["tensors"].size(), 4u);
  std::string edited_name;
  for (auto& [name, spec] : j["tensors"].items())
    if (spec.get<std::string>().find("int") == 0 || spec.get<std::string>().find("ecsq") == 0) edited_name = name;
  ASSERT_FALSE(edited_name.empty()) << j.dump();
  j["tensors"][edited_name] = "int3";
  cli::write_text(dir.file("edited.json"), j.dump());
  r = pgolf("compress " + in + " -o " + dir.file("c.pgz") + " --plan " + dir.file("edited.json") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const auto& t : nlohmann::json::parse(r.out)["tensors"])
    if (t["name"] == edited_name) EXPECT_EQ(t["codec"], "int3");
  j["tensors"].erase(edited_name);
  cli::write_text(dir.file("short.json"), j.dump());
  r = pgolf("compress " + in + " -o " + dir.file("d.pgz") + " --plan " + dir.file("short.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no spec for tensor '" + edited_name + "'"), std::string::npos) << r.out;
  j["tensors"][edited_name] = "int6";
  j["tensors"]["ghost.weight"] = "int6";
  cli::write_text(dir.file("ghost.json"), j.dump());
  r = pgolf("compress " + in + " -o " + dir.file("d.pgz") + " --plan " + dir.file("ghost.json"));
  EXPECT_NE(r.out.find("'ghost.weight' is not in the checkpoint"), std::string::npos) << r.out;
  j["tensors"].erase("ghost.weight");
  j["tensors"][edited_name] = "int42";
  cli::write_text(dir.file("bad.json"), j.dump());
  r = pgolf("compress " + in + " -o " + dir.file("d.pgz") + " --plan " + dir.file("bad.json"));
  EXPECT_NE(r.out.find(edited_name), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.pgz")));
}

// pgolf --version names the build; pgolf help CMD is pgolf CMD --help.
TEST(Cli, VersionAndHelpForACommand) {
  auto r = pgolf("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.out.starts_with("pgolf 0.")) << r.out;
  EXPECT_NE(r.out.find("CUDA"), std::string::npos) << r.out;  // "CUDA 13.0, sm 90" or "no CUDA"
  for (const char* command : {"compress", "train", "eval"}) {
    auto help = pgolf(std::string("help ") + command), flag = pgolf(std::string(command) + " --help");
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_EQ(help.out, flag.out) << command;
    EXPECT_NE(help.out.find("Usage:"), std::string::npos) << help.out;
  }
}

// One vocabulary: every command writes to -o/--output/--out and replaces with --force/--overwrite;
// the same flag given twice under two of its names is refused.
TEST(Cli, OneVocabularyForOutputsAndReplacing) {
  test::TempDir dir;
  const std::string out = dir.file("d.py");
  for (const std::string& flag : {"-o ", "--output ", "--out "}) {
    auto r = pgolf("export-decoder " + flag + out + " --force");
    EXPECT_EQ(r.exit_code, 0) << flag << r.out;
  }
  EXPECT_EQ(pgolf("export-decoder --out " + out + " --overwrite").exit_code, 0);
  auto r = pgolf("export-decoder --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = pgolf("export-decoder -o " + out + " --out " + dir.file("e.py"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("given 2 times"), std::string::npos) << r.out;
  for (const char* command : {"compress", "decompress", "calibrate", "sensitivity", "train", "bench", "export-decoder"}) {
    const std::string help = pgolf(std::string(command) + " --help").out;
    EXPECT_NE(help.find("--out"), std::string::npos) << command << ": " << help;
    EXPECT_NE(help.find("--overwrite"), std::string::npos) << command << ": " << help;
    EXPECT_NE(help.find("--force"), std::string::npos) << command << ": " << help;
  }
}

// Counts take exponent form as budgets do ("1e3" is 1000); a count that is not whole is refused.
TEST(Cli, CountsTakeExponentForm) {
  const std::string eval = "eval " + test::sample_path("base9") + " --data " + test::sample_path("sp1024") +
                           " --device cpu --threads 2 --tokens ";
  auto plain = pgolf(eval + "1000"), exponent = pgolf(eval + "1e3");
  ASSERT_EQ(plain.exit_code, 0) << plain.out;
  ASSERT_EQ(exponent.exit_code, 0) << exponent.out;
  const auto loss_line = [](const std::string& out) { return out.substr(out.find("val_loss")); };
  EXPECT_EQ(loss_line(plain.out).substr(0, 40), loss_line(exponent.out).substr(0, 40));
  for (const char* bad : {"1.5", "1e3x", "1e30"}) {
    auto r = pgolf(eval + bad);
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("failed to parse"), std::string::npos) << r.out;
  }
  EXPECT_NE(pgolf(eval + "-1e3").out.find("--tokens must be positive"), std::string::npos);
}

// Progress in a log (stderr not a terminal): timed lines with an estimate of the rest
// (PGOLF_PROGRESS_SECONDS apart; 0 here: every report); -q: none.
TEST(Cli, ProgressLinesInALogAndQuiet) {
  ::setenv("PGOLF_PROGRESS_SECONDS", "0", 1);
  const std::string eval = "eval " + test::sample_path("base9") + " --data " + test::sample_path("sp1024") +
                           " --tokens 5120 --device cpu --threads 1";  // 5 windows: a call of 4, then 1
  auto r = pgolf(eval);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"((^|\n)eval 4/5 \(80%\) [0-9.]+s ETA [0-9.]+s\n)"))) << r.out;
  r = pgolf(eval + " -q");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("4/5"), std::string::npos) << r.out;
  ::unsetenv("PGOLF_PROGRESS_SECONDS");
}

TEST(Cli, BadInputIsOneLineAndExitCodeTwo) {
  test::TempDir dir;
  std::string in = small_checkpoint(dir), pgz = dir.file("d.pgz");
  ASSERT_EQ(pgolf("compress " + in + " -o " + pgz).exit_code, 0);
  auto artifact = test::read_bytes(pgz);
  auto truncated = artifact;
  truncated.resize(artifact.size() - 100);
  test::write_bytes(dir.file("trunc.pgz"), truncated);
  test::write_bytes(dir.file("junk.safetensors"), {1, 2, 3});
  struct Case {
    std::string args;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"", "usage"},
      {"frobnicate", "unknown command"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --codec int42", "int42"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --codec zz6", "unknown codec"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --compressor lzma", "unknown compressor"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --rule 'noequals'", "REGEX=SPEC"},
      {"compress " + in + " -o " + pgz, "exists"},
      {"compress " + in, "no output"},
      {"compress " + dir.file("missing.safetensors") + " -o " + dir.file("e.pgz"), "missing.safetensors"},
      {"compress " + dir.file("junk.safetensors") + " -o " + dir.file("e.pgz"), "junk.safetensors"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --budget lots", "byte count"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --bogus-flag", "bogus"},
      {"decompress " + dir.file("trunc.pgz") + " -o " + dir.file("f.safetensors"), "trunc.pgz"},
      {"decompress " + in + " -o " + dir.file("f.safetensors"), "not a pgolf artifact"},
      {"decompress " + pgz + " -o " + dir.file("f.safetensors") + " --dtype int8", "--dtype"},
      {"inspect " + dir.file("trunc.pgz"), "truncated"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --profile python --compressor rans", "not one the Python decoder reads"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --profile python --compressor auto", "not one the Python decoder reads"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --profile lua", "unknown decoder profile"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --code " + dir.file("missing.py"), "missing.py"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --code " + in + " --budget 100", "the code alone"},
      {"export-decoder", "no output"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --plan " + in, "not a plan"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --plan " + dir.file("none.json"), "cannot read the plan"},
      {"export-decoder -o " + pgz, "exists"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --device gpu", "--device must be auto, cpu or cuda"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --codec int6:rdo=-1", "rdo must be"},
      // Nothing silently ignored (issue 40): extra arguments, a flag's second value, flags with no effect.
      {"decompress " + pgz + " " + pgz + " -o " + dir.file("f.safetensors"), "unexpected argument"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --codec int6 --codec int8", "--codec given 2 times"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --candidates int6", "--candidates is for --auto"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --sensitivity " + dir.file("none.json"), "--sensitivity is for --auto"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --auto --budget 1e6 --codec int6", "--codec has no effect"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --auto --budget 1e6 --candidates ';'", "--candidates is empty"},
      {"compres " + in, "unknown command 'compres'; did you mean compress?"},
      {"compress " + in + " -o " + dir.file("e.pgz") + " --codecs int6", "unknown option '--codecs'; did you mean --codec?"},
      {"compress " + in + " -o -", "writing to standard output ('-') is not supported"},
  };
  for (const auto& c : cases) {
    auto r = pgolf(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << "\n" << r.out;
    if (c.args.size()) {
      EXPECT_LE(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("e.pgz")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("f.safetensors")));
  EXPECT_EQ(test::read_bytes(pgz), artifact) << "a refused overwrite leaves the old file";
}

}  // namespace
}  // namespace pgolf

// pgolf calibrate on the real base9, then compress --calibration: GPTQ's output error is at most
// round to nearest's on every quantized tensor, the same bytes for any thread count; calibration
// reads train shards only; bad input is one line and exit 2, and writes nothing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_pgolf.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

nlohmann::json json_of(const test::Run& r) { return nlohmann::json::parse(r.out.substr(r.out.find('{'))); }

// A data folder with sp1024's train shard and a val shard of garbage: calibration must not open it.
std::string train_only_data(const test::TempDir& dir) {
  std::filesystem::create_directories(dir.path() / "data");
  std::filesystem::copy_file(test::sample_path("sp1024/corpus_train_000000.bin"), dir.file("data/c_train_000000.bin"));
  test::write_bytes(dir.file("data/c_val_000000.bin"), std::vector<uint8_t>(100, 0xEE));
  return dir.file("data");
}

// Calibrates base9 on 8 windows of 512 train tokens; returns the Hessians' path.
std::string calibrated_base9(const test::TempDir& dir) {
  const std::string h = dir.file("h.safetensors");
  auto r = pgolf("calibrate " + test::sample_path("base9") + " --data " + train_only_data(dir) +
                 " --tokens 4000 --seq-len 512 --device cpu -o " + h);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("55 matrices (37 distinct inputs) over 4,096 token positions"), std::string::npos) << r.out;
  return h;
}

TEST(CliCalibrate, GptqBeatsRoundToNearestOnEveryTensorOfBase9) {
  test::TempDir dir;
  const std::string h = calibrated_base9(dir);
  const Checkpoint file = Checkpoint::open({h});
  EXPECT_EQ(file.metadata().at("tokens"), "4096");
  EXPECT_EQ(file.metadata().at("source"), "train:" + dir.file("data"));
  EXPECT_EQ(file.metadata().at("model"), test::sample_path("base9"));
  EXPECT_EQ(file.at("blocks.3.mlp.proj.weight").shape, (std::vector<int64_t>{1024, 1024}));

  std::map<std::string, double> rtn;
  auto r = pgolf("compress " + test::sample_path("base9") + " --codec int6 --calibration " + h + " --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto rtn_json = json_of(r);
  for (const auto& t : rtn_json["tensors"])
    if (!t["distortion"]["output_sq_error"].is_null()) rtn[t["name"]] = t["distortion"]["output_sq_error"].get<double>();
  ASSERT_EQ(rtn.size(), 55u) << "every quantized matrix is calibrated";

  const std::string artifact = dir.file("calibrated.pgz");
  r = pgolf("compress " + test::sample_path("base9") + " --codec gptq+int6 --calibration " + h + " -o " + artifact +
            " --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = json_of(r);
  size_t compared = 0;
  for (const auto& t : j["tensors"]) {
    if (t["codec"] != "gptq+int6") continue;
    EXPECT_LE(t["distortion"]["output_sq_error"].get<double>(), rtn.at(t["name"])) << t["name"];
    ++compared;
  }
  EXPECT_EQ(compared, 55u);
  EXPECT_LT(j["quantized"]["output_relative_error"].get<double>(), 0.5 * 9.46e-4) << "int6 round to nearest: 9.46e-4";
  // The artifact decodes as plain int6, without the calibration.
  r = pgolf("inspect " + artifact);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("gptq"), std::string::npos) << r.out;
}

TEST(CliCalibrate, SameBytesForAnyThreadCount) {
  test::TempDir dir;
  const std::string slice = test::base9_subset(
      dir, {"blocks.2.attn.proj.weight", "blocks.2.mlp.proj.weight", "blocks.2.attn.q_gain"}, "slice.safetensors");
  const std::string h = calibrated_base9(dir);
  for (const char* threads : {"1", "2"}) {
    auto r = pgolf("compress " + slice + " --codec gptq+ecsq:step=0.03 --compressor rans --calibration " + h +
                   " --threads " + threads + " -o " + dir.file(std::string("t") + threads + ".pgz"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  EXPECT_EQ(test::read_bytes(dir.file("t1.pgz")), test::read_bytes(dir.file("t2.pgz")));
}

TEST(CliCalibrate, SelfGeneratedSequencesAreRecorded) {
  test::TempDir dir;
  const std::string h = dir.file("self.safetensors");
  auto r = pgolf("calibrate " + test::sample_path("base9") + " --self-generated 2 --seq-len 12 --temperature 0.8 --seed 5 "
                 "--device cpu -o " + h);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const Checkpoint file = Checkpoint::open({h});
  EXPECT_EQ(file.metadata().at("tokens"), "24");
  EXPECT_EQ(file.metadata().at("source"), "self-generated:2,temperature=0.8,seed=5");
  EXPECT_EQ(file.tensors().size(), 55u);
}

TEST(CliCalibrate, BadInputIsAOneLineErrorAndWritesNothing) {
  test::TempDir dir;
  const std::string base9 = test::sample_path("base9"), data = train_only_data(dir), out = dir.file("h.safetensors");
  test::TempDir val_only;
  std::filesystem::copy_file(test::sample_path("sp1024/corpus_val_000000.bin"), val_only.file("c_val_000000.bin"));
  const std::string existing = dir.file("existing.safetensors");
  test::write_bytes(existing, {1, 2, 3});
  for (const std::string& args : {
           "calibrate " + base9 + " -o " + out,                                                   // no data
           "calibrate " + base9 + " --data " + data,                                              // no output
           "calibrate " + base9 + " --data " + data + " --self-generated 2 -o " + out,            // both sources
           "calibrate " + base9 + " --data " + data + " --temperature 0.5 -o " + out,             // sampling flag
           "calibrate " + base9 + " --data " + data + " --tokens 10000000 -o " + out,             // too few tokens
           "calibrate " + base9 + " --data " + val_only.path().string() + " -o " + out,           // no train shard
           "calibrate " + base9 + " --data " + data + " --seq-len 0 -o " + out,                   // bad length
           "calibrate " + base9 + " --self-generated 1 --temperature 0 -o " + out,                // bad temperature
           "calibrate " + base9 + " --data " + data + " --tokens 512 -o " + existing,             // exists
           "calibrate " + dir.file("missing") + " --data " + data + " -o " + out,                 // no model
       }) {
    auto r = pgolf(args + " --device cpu");
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    // One error line, the last: pgolf calibrate: error: ...
    const size_t line = r.out.rfind('\n', r.out.size() - 2) + 1;
    EXPECT_EQ(r.out.find("pgolf calibrate: error: "), line) << args << "\n" << r.out;
    EXPECT_FALSE(std::filesystem::exists(out)) << args;
  }
  EXPECT_EQ(test::read_bytes(existing), (std::vector<uint8_t>{1, 2, 3}));
  // compress: gptq without calibration, and a calibration of another model.
  auto r = pgolf("compress " + base9 + " --codec gptq+int6 --dry-run");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--calibration"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pgolf

// pgolf sensitivity: each probe's loss is the loss pgolf eval reports for an artifact with that
// tensor alone quantized, and the weights it writes are what compress --auto --sensitivity reads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_pgolf.h"
#include "support/test_support.h"
#include "trainer/test_helpers.h"

namespace pgolf {
namespace {

using test::pgolf;

// A small random model with sp1024's vocab, whose embedding and MLP matrices are large enough
// (> 65,536 values) for the default plan to quantize; fp32, so evaluation sees exactly these values.
std::string small_model(const test::TempDir& dir) {
  ModelConfig c;
  c.vocab = 1024;
  c.dim = 128;
  c.layers = 2;
  c.heads = 4;
  c.kv_heads = 2;
  c.mlp_hidden = 1024;
  std::vector<TensorData> tensors;
  for (const auto& [name, t] : params_to_tensors(test::random_params<float>(c, 7))) {
    TensorData d{name, DType::F32, t.shape, std::vector<uint8_t>(t.values.size() * 4)};
    std::memcpy(d.bytes.data(), t.values.data(), d.bytes.size());
    tensors.push_back(std::move(d));
  }
  std::string path = dir.file("model.safetensors");
  write_safetensors(path, tensors, {}, false);
  return path;
}

double eval_loss(const std::string& model) {
  auto r = pgolf("eval " + model + " --data " + test::sample_path("sp1024") + " --tokens 1024 --device cpu --json");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  return nlohmann::json::parse(r.out.substr(r.out.find('{')))["val_loss"].get<double>();
}

TEST(Sensitivity, ProbeLossesAreEvalsOfTheTensorAloneQuantized) {
  test::TempDir dir;
  const std::string model = small_model(dir), weights = dir.file("sens.json");
  auto r = pgolf("sensitivity " + model + " --data " + test::sample_path("sp1024") +
                 " --tokens 1024 --codec int3 --device cpu --json -o " + weights);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  ASSERT_EQ(j["tensors"].size(), 5u) << r.out;  // tok_emb and each block's mlp.fc and mlp.proj
  EXPECT_NEAR(j["base_loss"].get<double>(), eval_loss(model), 1e-9);

  const auto file = nlohmann::json::parse(test::read_bytes(weights));
  EXPECT_EQ(file["space"], "weight");
  const auto& written = file["weights"];
  ASSERT_EQ(written.size(), 5u);
  for (const auto& t : j["tensors"]) {
    const double weight = t["weight"].get<double>();
    EXPECT_TRUE(std::isfinite(weight) && weight > 0) << t;
    EXPECT_EQ(written[t["name"].get<std::string>()].get<double>(), weight);
    if (t["loss_increase"].get<double>() > 0) {
      EXPECT_NEAR(weight * t["sum_sq_error"].get<double>(), t["loss_increase"].get<double>(), 1e-12);
    }
  }

  // The embedding's probe, rebuilt by hand: an artifact with tok_emb alone at int3, the rest exact.
  const auto& tok_emb = j["tensors"].back();  // sorted by name
  ASSERT_EQ(tok_emb["name"], "tok_emb.weight");
  const std::string artifact = dir.file("tok_emb_int3.pgz");
  r = pgolf("compress " + model + " -o " + artifact + " --rule '^tok_emb\\.weight$=int3' --rule '.=fp32'");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NEAR(tok_emb["loss"].get<double>(), eval_loss(artifact), 1e-9);
  EXPECT_GT(tok_emb["loss_increase"].get<double>(), 0);  // int3 on the embedding costs loss
}

// With calibration the weights are per unit of output error tr(ΔW H ΔWᵀ), the error compress
// --auto --calibration minimises; the solver refuses weights of the other space.
TEST(Sensitivity, CalibratedWeightsAreInOutputSpaceAndDoNotMix) {
  test::TempDir dir;
  const std::string model = small_model(dir), h = dir.file("h.safetensors"), data = " --data " + test::sample_path("sp1024");
  auto r = pgolf("calibrate " + model + data + " --tokens 2048 --device cpu -o " + h);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  r = pgolf("sensitivity " + model + data + " --tokens 1024 --codec int3 --device cpu --json --calibration " + h + " -o " +
            dir.file("out.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["space"], "output");
  for (const auto& t : j["tensors"]) {
    if (t["loss_increase"].get<double>() > 0)
      EXPECT_NEAR(t["weight"].get<double>() * t["sum_sq_error"].get<double>(), t["loss_increase"].get<double>(), 1e-12);
  }
  EXPECT_EQ(nlohmann::json::parse(test::read_bytes(dir.file("out.json")))["space"], "output");
  ASSERT_EQ(pgolf("sensitivity " + model + data + " --tokens 1024 --codec int3 --device cpu -o " + dir.file("w.json")).exit_code, 0);
  const std::string solve = "compress " + model + " -o " + dir.file("a.pgz") + " --auto --budget 600000 --candidates 'int4;int8'";
  r = pgolf(solve + " --calibration " + h + " --sensitivity " + dir.file("w.json"));
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("per unit of weight error and the solver minimises output error"), std::string::npos) << r.out;
  r = pgolf(solve + " --calibration " + h + " --sensitivity " + dir.file("out.json"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST(Sensitivity, BadInputIsAOneLineError) {
  test::TempDir dir;
  const std::string model = small_model(dir), data = " --data " + test::sample_path("sp1024") + " --device cpu";
  for (const std::string& args : {"sensitivity " + model + data + " --codec fp16 -o " + dir.file("a.json"),
                                  "sensitivity " + model + data + " --codec int9 -o " + dir.file("a.json"),
                                  "sensitivity " + model + data + " --rule '.=fp16' -o " + dir.file("a.json"),
                                  "sensitivity " + model + data,
                                  "sensitivity " + model + " -o " + dir.file("a.json")}) {
    auto r = pgolf(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.json")));
}

}  // namespace
}  // namespace pgolf

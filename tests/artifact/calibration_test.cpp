// The fit step inside the artifact: compress with calibration Hessians writes GPTQ's symbols under
// the grid's decoder spec, reports the output-space error, lets the budget solver minimise it, and
// refuses a calibration that does not fit the checkpoint with an error naming the tensor.
#include <gtest/gtest.h>

#include <cstring>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "core/error.h"
#include "plan/budget_plan.h"
#include "plan/plan.h"
#include "quant/calibration.h"
#include "support/base9_subset.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

const char* kMatrices[] = {"blocks.0.attn.c_k.weight", "blocks.0.mlp.fc.weight"};  // both 512 columns

TensorData float_matrix(const std::string& name, const std::vector<float>& values, int64_t rows, int64_t cols) {
  TensorData t{name, DType::F32, {rows, cols}, std::vector<uint8_t>(values.size() * 4)};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

struct Fixture {
  test::TempDir dir;
  Checkpoint checkpoint = Checkpoint::open(
      {test::base9_subset(dir, {kMatrices[0], kMatrices[1], "blocks.0.attn.q_gain"}, "slice.safetensors")});
  std::string hessians(const std::vector<TensorData>& tensors) {
    std::string path = dir.file("h" + std::to_string(files++) + ".safetensors");
    write_safetensors(path, tensors, {{"pgolf.calibration", "hessian"}}, false);
    return path;
  }
  std::string good() {
    return hessians({float_matrix(kMatrices[0], test::correlated_hessian(512, 1, 1024), 512, 512),
                     float_matrix(kMatrices[1], test::correlated_hessian(512, 2, 1024), 512, 512)});
  }
  int files = 0;
};

CompressResult compress(const Fixture& f, const std::string& spec, const Calibration* calibration) {
  return compress_checkpoint(f.checkpoint, Plan(spec, {}).specs_for(f.checkpoint), *make_byte_codec("zstd:3"),
                             {0, nullptr, calibration});
}

TEST(Calibration, GptqWritesTheGridsStreamsAndLowersTheOutputError) {
  Fixture f;
  auto calibration = Calibration::load(f.good());
  auto rtn = compress(f, "int6", &calibration);
  auto gptq = compress(f, "gptq+int6", &calibration);
  Distortion r, g;
  for (size_t i = 0; i < gptq.tensors.size(); ++i) {
    if (!gptq.tensors[i].quantized) continue;
    EXPECT_EQ(gptq.tensors[i].codec, "gptq+int6");
    ASSERT_TRUE(gptq.tensors[i].distortion.has_output());
    EXPECT_LT(gptq.tensors[i].distortion.output_sq_error, rtn.tensors[i].distortion.output_sq_error) << gptq.tensors[i].name;
    r.add(rtn.tensors[i].distortion), g.add(gptq.tensors[i].distortion);
  }
  EXPECT_EQ(g.output_tensors, 2);
  EXPECT_LT(g.output_relative_error(), 0.9 * r.output_relative_error());
  // The artifact records the grid: any reader decodes it, and decoding gives what was measured.
  auto decoded = decode_artifact(gptq.bytes, "gptq.pgz");
  for (const auto& t : decoded.manifest.tensors)
    if (t.name == kMatrices[0]) EXPECT_EQ(t.codec, "int6");
  // Same inputs, same bytes.
  EXPECT_EQ(compress(f, "gptq+int6", &calibration).bytes, gptq.bytes);
  // Without calibration there is no output error, and gptq cannot encode.
  EXPECT_FALSE(compress(f, "int6", nullptr).tensors[0].distortion.has_output());
  EXPECT_THROW(compress(f, "gptq+int6", nullptr), InputError);
}

void expect_error(const std::function<void()>& run, const std::string& what) {
  try {
    run();
    ADD_FAILURE() << "no error; expected one saying " << what;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(Calibration, AHessianThatDoesNotFitIsAnErrorNamingTheTensor) {
  Fixture f;
  // Missing for one matrix.
  auto one = Calibration::load(f.hessians({float_matrix(kMatrices[0], test::correlated_hessian(512, 1, 1024), 512, 512)}));
  expect_error([&] { compress(f, "gptq+int6", &one); }, std::string("tensor '") + kMatrices[1] + "'");
  // Of the wrong size, for GPTQ and for the output error alike.
  auto small = Calibration::load(f.hessians({float_matrix(kMatrices[0], test::correlated_hessian(64, 1), 64, 64),
                                             float_matrix(kMatrices[1], test::correlated_hessian(512, 2, 1024), 512, 512)}));
  for (const char* spec : {"gptq+int6", "int6"})
    expect_error([&] { compress(f, spec, &small); }, std::string("tensor '") + kMatrices[0] + "': its Hessian is 64x64, not 512x512");
  // Not square: not a Hessian file at all.
  std::string bad = f.hessians({float_matrix(kMatrices[0], std::vector<float>(512 * 4), 512, 4)});
  expect_error([&] { Calibration::load(bad); }, "not a square float matrix");
}

TEST(Calibration, TheBudgetSolverMinimisesTheOutputError) {
  Fixture f;
  auto calibration = Calibration::load(f.good());
  auto zstd = make_byte_codec("zstd:3");
  // GPTQ's symbols take a little more entropy than round-to-nearest's on the same grid: the budget
  // is a little above what GPTQ at int5 for all takes (so that an estimate a little off cannot shut it out).
  auto uniform = compress(f, "gptq+int5", &calibration);
  uint64_t budget = static_cast<uint64_t>(static_cast<double>(uniform.bytes.size()) * 1.02);
  BudgetPlanOptions options;
  options.candidates = {"int4", "gptq+int4", "int5", "gptq+int5", "int6", "gptq+int6"};
  options.calibration = &calibration;
  auto plan = plan_for_budget(f.checkpoint, budget, *zstd, options);
  EXPECT_TRUE(plan.output_space);
  EXPECT_LE(plan.artifact.bytes.size(), budget);
  double chosen = 0, uniform_error = 0;
  for (const auto& t : plan.tensors) chosen += t.distortion.output_sq_error;
  for (const auto& t : uniform.tensors) uniform_error += t.distortion.output_sq_error;
  // At most the output error of the uniform choice that fits; far below round to nearest's.
  EXPECT_LE(chosen, uniform_error * 1.0001);
  double rtn = 0;
  for (const auto& t : compress(f, "int5", &calibration).tensors) rtn += t.distortion.output_sq_error;
  EXPECT_LT(chosen, 0.9 * rtn);
}

}  // namespace
}  // namespace pgolf

// torch.save checkpoints through the CLI: decompress --format pt writes one, every reading
// subcommand takes it, and it compresses to the very artifact its safetensors twin gives; bad .pt
// files are one line, exit 2, and leave no output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "checkpoint/zip_store.h"
#include "cli/run_pgolf.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

TEST(CliTorch, APtCompressesToTheArtifactOfItsSafetensorsTwin) {
  test::TempDir dir;
  const std::string slice = test::base9_subset(
      dir, {"blocks.1.attn.c_v.weight", "blocks.1.mlp.fc.weight", "blocks.1.attn.q_gain", "blocks.1.mlp_scale"},
      "slice.safetensors");
  auto r = pgolf("compress " + slice + " -o " + dir.file("a.pgz") + " --codec int5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* format : {"pt", "safetensors"}) {
    r = pgolf("decompress " + dir.file("a.pgz") + " --dtype bf16 --format " + format + " -o " + dir.file("d." + std::string(format)));
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  for (const char* format : {"pt", "safetensors"}) {
    r = pgolf("compress " + dir.file("d." + std::string(format)) + " -o " + dir.file(std::string(format) + ".pgz") +
              " --codec ecsq:step=0.03 --compressor auto");
    ASSERT_EQ(r.exit_code, 0) << r.out;
  }
  EXPECT_EQ(test::read_bytes(dir.file("pt.pgz")), test::read_bytes(dir.file("safetensors.pgz")));
  r = pgolf("inspect " + dir.file("d.pt") + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"blocks.1.mlp.fc.weight\""), std::string::npos) << r.out;
  // The real fixtures too: a module's state dict (bf16, with _metadata) and one of views.
  r = pgolf("compress " + test::source_dir() + "/tests/fixtures/torch/views.pt -o " + dir.file("v.pgz") + " --codec int8");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST(CliTorch, BadPtFilesAreOneLineErrorsWithNoOutput) {
  test::TempDir dir;
  // A pickle that would run a shell command if anything ran it.
  const std::string marker = dir.file("ran"), command = "touch " + marker;
  const std::string p = std::string("\x80\x02", 2) + "cos\nsystem\nX" +
                        std::string{static_cast<char>(command.size()), 0, 0, 0} + command + "\x85R.";
  const std::vector<uint8_t> pickle(p.begin(), p.end());
  test::write_bytes(dir.file("system.pt"), write_stored_zip(std::vector<ZipEntry>{{"archive/data.pkl", pickle}}));
  const std::vector<uint8_t> good = test::read_bytes(test::source_dir() + "/tests/fixtures/torch/dtypes.pt");
  test::write_bytes(dir.file("truncated.pt"), {good.begin(), good.begin() + 300});
  test::write_bytes(dir.file("garbage.pt"), {'P', 'K', 3, 4, 1, 2, 3});
  const std::vector<uint8_t> legacy = test::read_bytes(test::source_dir() + "/tests/fixtures/torch/legacy.pt");
  test::write_bytes(dir.file("legacy.pt"), {legacy.begin(), legacy.end() - 9});  // a storage cut short
  for (const std::string name : {"system.pt", "truncated.pt", "garbage.pt", "legacy.pt"}) {
    const std::string out = dir.file(name + ".pgz");
    for (const std::string& cmd : {"compress " + dir.file(name) + " -o " + out, "inspect " + dir.file(name),
                                   "eval " + dir.file(name) + " --data " + test::sample_path("sp1024") + " --device cpu"}) {
      auto r = pgolf(cmd);
      EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.out;
      EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << cmd << "\n" << r.out;
    }
    EXPECT_FALSE(std::filesystem::exists(out)) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(marker)) << "nothing in a pickle is ever run";
}

}  // namespace
}  // namespace pgolf

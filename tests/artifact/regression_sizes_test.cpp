// The size table CI holds (as zstd keeps one): samples/base9's artifact bytes for each codec and
// byte codec in tests/regression/sizes.csv. A change that moves any size fails here until the
// table is updated in the same commit, with the reason.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "artifact/artifact.h"
#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "plan/plan.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

struct SizeRow {
  std::string codec, compressor;
  uint64_t bytes = 0;
};

std::vector<SizeRow> size_table() {
  std::ifstream in(test::source_dir() + "/tests/regression/sizes.csv");
  std::vector<SizeRow> rows;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {
      header = false;
      continue;
    }
    std::stringstream fields(line);
    SizeRow row;
    std::string bytes;
    std::getline(fields, row.codec, ',');
    std::getline(fields, row.compressor, ',');
    std::getline(fields, bytes, ',');
    row.bytes = std::stoull(bytes);
    rows.push_back(row);
  }
  return rows;
}

TEST(RegressionSizes, Base9ArtifactsKeepTheirBytes) {
  const std::vector<SizeRow> rows = size_table();
  ASSERT_GE(rows.size(), 8u);
  const Checkpoint base9 = Checkpoint::open({test::sample_path("base9")});
  std::string changed;
  for (const SizeRow& row : rows) {
    const uint64_t bytes = compress_checkpoint(base9, Plan(row.codec, {}).specs_for(base9),
                                               *make_byte_codec(row.compressor)).bytes.size();
    if (bytes != row.bytes)
      changed += "\n  " + row.codec + "," + row.compressor + "," + std::to_string(bytes) + "   (table: " +
                 std::to_string(row.bytes) + ", " + (bytes > row.bytes ? "+" : "-") +
                 std::to_string(bytes > row.bytes ? bytes - row.bytes : row.bytes - bytes) + " B)";
  }
  EXPECT_TRUE(changed.empty()) << "artifact sizes changed; if that is intended, put these rows in "
                                  "tests/regression/sizes.csv in the same commit and say why:"
                               << changed;
}

}  // namespace
}  // namespace pgolf

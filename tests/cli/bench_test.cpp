// pgolf bench and pgolf compress --auto as a user runs them: the files bench writes (Markdown,
// CSV, JSON, SVG) agree with each other, val_bpb equals pgolf eval's, and --auto fits its budget.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "checkpoint/safetensors.h"
#include "cli/run_pgolf.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

using test::pgolf;

std::string read_text(const std::string& path) {
  auto bytes = test::read_bytes(path);
  return {bytes.begin(), bytes.end()};
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t i = text.find(what); i != std::string::npos; i = text.find(what, i + 1)) ++n;
  return n;
}

// Fields of one CSV line (quoted fields may hold commas; no newlines in ours).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) fields.emplace_back();
    else fields.back() += c;
  }
  return fields;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0, end; start < text.size(); start = end + 1) {
    end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
  }
  return out;
}

// Three quantizable tensors of base9 (one of each class kind) and a control tensor.
std::string base9_slice(const test::TempDir& dir) {
  return test::base9_subset(dir, {"tok_emb.weight", "blocks.0.attn.c_q.weight", "blocks.0.mlp.proj.weight", "blocks.0.attn.q_gain"},
                            "slice.safetensors");
}

TEST(Bench, WritesAgreeingMarkdownCsvJsonAndPlots) {
  test::TempDir dir;
  std::string in = base9_slice(dir), out = dir.file("out");
  const std::string ecsq = "kmeans:k=16,method=ecsq,lambda=0.0001";
  auto r = pgolf("bench " + in + " --codecs 'int4;int8' --codecs '" + ecsq + "' --compressors 'zstd:3;zlib:6' --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("| int4 | zstd:3 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| " + ecsq + " | zlib:6 |"), std::string::npos) << r.out;

  auto md = read_text(out + "/bench.md");
  EXPECT_EQ(count(md, "| zstd:3 |") + count(md, "| zlib:6 |"), 6u);
  EXPECT_NE(md.find("![rd_bytes_vs_rel_mse.svg](rd_bytes_vs_rel_mse.svg)"), std::string::npos);
  // The class table: one row per codec (the first byte codec's), each class's error as the JSON has it.
  const size_t classes = md.find("## Relative MSE by tensor class");
  ASSERT_NE(classes, std::string::npos) << md;
  EXPECT_NE(md.find("| codec | attn.c_q | mlp.proj | tok_emb |", classes), std::string::npos) << md;

  auto json = nlohmann::json::parse(read_text(out + "/bench.json"));
  ASSERT_EQ(json.size(), 6u);
  auto csv = lines(read_text(out + "/bench.csv"));
  ASSERT_EQ(csv.size(), 7u);
  auto header = csv_fields(csv[0]);
  auto column = [&](const std::string& name) { return std::find(header.begin(), header.end(), name) - header.begin(); };
  for (size_t i = 0; i < 6; ++i) {
    auto row = csv_fields(csv[i + 1]);
    ASSERT_EQ(row.size(), header.size()) << csv[i + 1];
    EXPECT_EQ(row[column("label")], json[i]["label"].get<std::string>());
    EXPECT_EQ(row[column("compressor")], json[i]["compressor"].get<std::string>());
    EXPECT_EQ(std::stoull(row[column("artifact_bytes")]), json[i]["artifact_bytes"].get<uint64_t>());
    EXPECT_EQ(row[column("val_bpb")], "");
    EXPECT_TRUE(json[i]["val_bpb"].is_null());
    EXPECT_EQ(json[i]["tensors"].size(), 4u);
    EXPECT_EQ(json[i]["quantized_tensors"], 3);
  }
  EXPECT_EQ(json[0]["label"], "int4");
  for (size_t i : {0u, 2u, 4u}) {  // the zstd:3 rows; the class columns in name order, tok_emb last
    const auto& tok_emb = json[i]["tensors"].back();
    ASSERT_EQ(tok_emb["name"], "tok_emb.weight");
    char cell[32];
    std::snprintf(cell, sizeof cell, " %.3e |\n", tok_emb["error"]["relative_mse"].get<double>());
    const size_t row = md.find("| " + json[i]["label"].get<std::string>() + " | ", classes);
    ASSERT_NE(row, std::string::npos) << md;
    EXPECT_EQ(md.substr(row, md.find('\n', row) + 1 - row).ends_with(cell), true) << cell << "\n" << md;
  }
  EXPECT_LT(json[0]["artifact_bytes"].get<uint64_t>(), json[2]["artifact_bytes"].get<uint64_t>());  // int4 < int8
  EXPECT_EQ(lines(read_text(out + "/bench_tensors.csv")).size(), 1u + 6 * 4);

  // Families: "intN" and the ECSQ spec's, each under two compressors.
  auto svg = read_text(out + "/rd_bytes_vs_rel_mse.svg");
  EXPECT_EQ(count(svg, "<polyline"), 4u);
  EXPECT_NE(svg.find("intN, zstd:3"), std::string::npos);
  EXPECT_NE(svg.find("kmeans:k=N,method=ecsq,lambda=N, zlib:6"), std::string::npos);
  for (const char* cls : {"tok_emb", "attn.c_q", "mlp.proj"})
    EXPECT_TRUE(std::filesystem::exists(out + "/rd_class_" + cls + ".svg")) << cls;
  EXPECT_FALSE(std::filesystem::exists(out + "/rd_class_attn.q_gain.svg"));  // not quantized
  EXPECT_FALSE(std::filesystem::exists(out + "/rd_bytes_vs_val_bpb.svg"));   // not evaluated

  // A folder that is not empty needs --force, before any work; then the last run's plots go.
  r = pgolf("bench " + in + " --codecs int6 --compressors zstd:1 --json --out " + out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("not empty; pass --force"), std::string::npos) << r.out;
  test::write_bytes(out + "/rd_class_stale.svg", {'<'});
  r = pgolf("bench " + in + " --codecs int6 --compressors zstd:1 --json --force --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('['))).size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(out + "/rd_class_stale.svg"));
}

TEST(Bench, BadInputIsAOneLineError) {
  test::TempDir dir;
  std::string in = base9_slice(dir);
  auto r = pgolf("bench " + in + " --codecs int9 --out " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("int9"), std::string::npos) << r.out;
  r = pgolf("bench " + in + " --codecs int6 --compressors lzma --out " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2);
  r = pgolf("bench " + in + " --codecs int6 --eval-tokens 1024 --out " + dir.file("o"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--data"), std::string::npos) << r.out;
}

// bench's val_bpb is pgolf eval's on the same artifact.
TEST(Bench, ValBpbEqualsEvalOfTheArtifact) {
  test::TempDir dir;
  std::string base9 = test::sample_path("base9"), data = test::sample_path("sp1024"), pgz = dir.file("int8.pgz");
  // --tokens: every command's count of what it reads (--eval-tokens, bench's first spelling, kept).
  auto r = pgolf("bench " + base9 + " --codecs int8 --compressors zstd:1 --tokens 1024 --data " + data + " --json --out " +
                 dir.file("out"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto bench = nlohmann::json::parse(r.out.substr(r.out.find('[')));
  ASSERT_TRUE(bench[0]["val_bpb"].is_number()) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("out") + "/rd_bytes_vs_val_bpb.svg"));
  // The plot shows the cap, the unquantized checkpoint's val_bpb and each point's setting.
  auto text = [](const std::string& path) {
    const std::vector<uint8_t> bytes = test::read_bytes(path);
    return std::string(bytes.begin(), bytes.end());
  };
  const std::string plot = text(dir.file("out") + "/rd_bytes_vs_val_bpb.svg");
  EXPECT_NE(plot.find("16,000,000 B: Parameter Golf's cap"), std::string::npos) << plot;
  EXPECT_NE(plot.find(">the checkpoint as it is (unquantized)</text>"), std::string::npos) << plot;
  EXPECT_NE(plot.find(">int8</text>"), std::string::npos) << plot;
  EXPECT_NE(text(dir.file("out") + "/bench.md").find("The checkpoint itself, unquantized: val_bpb 0."),
            std::string::npos);
  ASSERT_EQ(pgolf("compress " + base9 + " --codec int8 --compressor zstd:1 -o " + pgz).exit_code, 0);
  // --val-tokens: train's spelling, the same count here.
  r = pgolf("eval " + pgz + " --data " + data + " --val-tokens 1024 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto eval = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_DOUBLE_EQ(bench[0]["val_bpb"].get<double>(), eval["val_bpb"].get<double>());
}

TEST(CompressAuto, FitsTheBudgetAndPrintsThePlan) {
  test::TempDir dir;
  std::string in = base9_slice(dir), pgz = dir.file("auto.pgz");
  const std::string flags = " --auto --candidates 'int4;int6' --candidates int8 --compressor zstd:3";
  auto r = pgolf("compress " + in + flags + " --budget 700000 -o " + pgz);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("budget plan (--auto): 3 candidates, 3 tensors chosen for"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("estimated"), std::string::npos);
  EXPECT_NE(r.out.find("artifact:"), std::string::npos);  // then the usual table
  EXPECT_LE(std::filesystem::file_size(pgz), 700000u);

  r = pgolf("compress " + in + flags + " --budget 700000 --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["auto"]["tensors"].size(), 3u);
  EXPECT_LE(j["artifact_bytes"].get<uint64_t>(), 700000u);
  EXPECT_FALSE(j["written"].get<bool>());

  r = pgolf("compress " + in + flags + " --budget 100kB --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("below the smallest size reachable"), std::string::npos) << r.out;
  r = pgolf("compress " + in + " --auto --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--budget"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pgolf

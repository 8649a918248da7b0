// pgolf inspect: what is inside safetensors files or artifacts.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "artifact/artifact.h"
#include "artifact/load.h"
#include "checkpoint/safetensors.h"
#include "cli/command.h"
#include "cli/format.h"
#include "cli/options.h"
#include "core/error.h"

namespace pgolf::cli {

namespace {

// Parameter Golf's cap on code plus compressed model, decimal bytes.
constexpr uint64_t kParameterGolfCap = 16'000'000;

// An artifact: every group is decompressed and both checksums verified, so "ok" means the
// whole file decodes.
nlohmann::json inspect_artifact(const std::string& path) {
  auto decoded = decode_artifact_file(path);
  const auto& m = decoded.manifest;
  nlohmann::json j = {{"path", path}, {"kind", "artifact"}, {"version", m.version},
                      {"bytes", std::filesystem::file_size(path)}, {"checksums", "ok"}, {"metadata", m.metadata}};
  for (const auto& g : m.groups)
    j["groups"].push_back({{"name", g.name}, {"codec", g.codec}, {"raw_size", g.raw_size}, {"stored_size", g.stored_size}});
  // A tensor's stored bytes: its share of each group it has streams in, in proportion to its raw
  // bytes there (a group is compressed as one), so the shares add up to the groups' stored sizes.
  uint64_t stream_total = 0;
  double stored_total = 0;
  for (const auto& t : m.tensors) {
    uint64_t stream_bytes = 0;
    double stored = 0;
    for (const auto& s : t.streams) {
      const ManifestGroup& g = m.groups.at(s.group);
      stream_bytes += s.size;
      stored += g.raw_size ? static_cast<double>(s.size) * static_cast<double>(g.stored_size) / static_cast<double>(g.raw_size) : 0;
    }
    stream_total += stream_bytes;
    stored_total += stored;
    j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", std::string(dtype_name(t.dtype))},
                            {"codec", t.codec}, {"stream_bytes", stream_bytes}, {"stored_bytes", std::llround(stored)}});
  }
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  j["stream_bytes"] = stream_total;
  j["stored_bytes"] = std::llround(stored_total);
  j["headroom_to_16000000"] = static_cast<int64_t>(kParameterGolfCap) - file_bytes;
  return j;
}

nlohmann::json inspect_safetensors(const std::vector<std::string>& paths) {
  auto checkpoint = Checkpoint::open(paths);
  nlohmann::json j = {{"path", paths}, {"kind", "checkpoint"}, {"files", checkpoint.files()}, {"metadata", checkpoint.metadata()}};
  uint64_t bytes = 0;
  int64_t params = 0;
  for (const auto& t : checkpoint.tensors()) {
    j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", std::string(dtype_name(t.dtype))},
                            {"bytes", t.bytes.size()}, {"file", t.file}});
    bytes += t.bytes.size();
    params += t.numel();
  }
  j["bytes"] = bytes;
  j["parameters"] = params;
  return j;
}

void print(const nlohmann::json& j) {
  bool artifact = j["kind"] == "artifact";
  if (artifact) {
    std::printf("%s: pgolf artifact v%d, %s B, checksums %s\n", j["path"].get<std::string>().c_str(), j["version"].get<int>(),
                with_commas(j["bytes"].get<uint64_t>()).c_str(), j["checksums"].get<std::string>().c_str());
    for (const auto& g : j["groups"])
      std::printf("  group %-12s %-20s %13s B -> %13s B\n", g["name"].get<std::string>().c_str(),
                  g["codec"].get<std::string>().c_str(), with_commas(g["raw_size"].get<uint64_t>()).c_str(),
                  with_commas(g["stored_size"].get<uint64_t>()).c_str());
  } else {
    std::printf("checkpoint: %zu files, %zu tensors, %s parameters, %s B\n", j["files"].size(), j["tensors"].size(),
                with_commas(j["parameters"].get<int64_t>()).c_str(), with_commas(j["bytes"].get<uint64_t>()).c_str());
  }
  std::printf("  %-36s %-14s %-5s", "tensor", "shape", "dtype");
  if (artifact)
    std::printf(" %-26s %13s %13s\n", "codec", "streams B", "stored B");
  else
    std::printf(" %13s\n", "bytes");
  for (const auto& t : j["tensors"]) {
    std::printf("  %-36s %-14s %-5s", t["name"].get<std::string>().c_str(),
                shape_string(t["shape"].get<std::vector<int64_t>>()).c_str(), t["dtype"].get<std::string>().c_str());
    if (artifact)
      std::printf(" %-26s %13s %13s\n", t["codec"].get<std::string>().c_str(),
                  with_commas(t["stream_bytes"].get<uint64_t>()).c_str(), with_commas(t["stored_bytes"].get<int64_t>()).c_str());
    else
      std::printf(" %13s\n", with_commas(t["bytes"].get<uint64_t>()).c_str());
  }
  if (!artifact) return;
  const int64_t headroom = j["headroom_to_16000000"].get<int64_t>();
  std::printf("  %-36s %-14s %-5s %-26s %13s %13s\n", "total", "", "", "", with_commas(j["stream_bytes"].get<uint64_t>()).c_str(),
              with_commas(j["stored_bytes"].get<int64_t>()).c_str());
  std::printf("16,000,000 B (Parameter Golf's cap, code included): %s B %s\n",
              with_commas(static_cast<uint64_t>(headroom < 0 ? -headroom : headroom)).c_str(),
              headroom < 0 ? "over" : "left for the code");
}

}  // namespace

int inspect_main(int argc, char** argv) {
  cxxopts::Options options("pgolf inspect", "List what safetensors files or .pgz artifacts hold (artifacts are fully verified).\n"
                                            "  pgolf inspect samples/base9\n  pgolf inspect base9.pgz");
  options.positional_help("FILE...").show_positional_help();
  options.add_options()
      ("json", "print JSON")
      ("files", "safetensors files/folders (one checkpoint) or artifacts", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"files"});
  cxxopts::ParseResult args;
  if (!parse_or_help(options, argc, argv, args)) return 0;
  require(args.count("files") > 0, "no file given (pgolf inspect --help)");
  auto files = args["files"].as<std::vector<std::string>>();
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::string> checkpoint_paths;
  for (const auto& f : files) {
    if (is_artifact_path(f))
      all.push_back(inspect_artifact(f));
    else
      checkpoint_paths.push_back(f);
  }
  if (!checkpoint_paths.empty()) all.push_back(inspect_safetensors(checkpoint_paths));
  if (args.count("json")) {
    std::cout << (all.size() == 1 ? all[0] : all).dump(2) << "\n";
  } else {
    for (const auto& j : all) print(j);
  }
  return 0;
}

}  // namespace pgolf::cli

// docs/DESIGN.md's floors table is the law of includes: every source folder it lists includes only
// itself and the folders on its row, every source folder is listed, and every listed folder exists.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "support/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" `"), b = s.find_last_not_of(" `");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// folder -> the folders it may include (itself added), from the "## Floors" table.
std::map<std::string, std::set<std::string>> floors() {
  std::ifstream in(test::source_dir() + "/docs/DESIGN.md");
  std::map<std::string, std::set<std::string>> allowed;
  std::string line;
  bool in_section = false;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Floors (what may include what)";
    if (!in_section || line.rfind("| ", 0) != 0 || line.rfind("| folder", 0) == 0) continue;
    std::vector<std::string> cells;
    std::stringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');) cells.push_back(trim(cell));
    if (cells.size() < 2 || cells[0].find_first_not_of("-") == std::string::npos) continue;
    std::set<std::string>& may = allowed[cells[0]];
    may.insert(cells[0]);
    std::stringstream list(cells[1]);
    for (std::string folder; std::getline(list, folder, ',');)
      if (!trim(folder).empty()) may.insert(trim(folder));
  }
  return allowed;
}

TEST(Design, IncludesFollowTheFloors) {
  const auto allowed = floors();
  ASSERT_GE(allowed.size(), 10u) << "docs/DESIGN.md has no floors table";
  const fs::path root = test::source_dir();
  const std::set<std::string> not_sources{"tests", "bench", "fuzz", "docs", "scripts", "samples", "build"};
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string folder = entry.path().filename().string();
    if (!entry.is_directory() || folder[0] == '.' || not_sources.count(folder) || folder.rfind("build", 0) == 0 ||
        !fs::exists(entry.path() / "CMakeLists.txt"))
      continue;
    EXPECT_TRUE(allowed.count(folder)) << folder << "/ is a source folder that docs/DESIGN.md's floors table omits";
  }
  static const std::regex include(R"re(^\s*#\s*include\s+"([a-z_]+)/)re");
  std::string violations;
  for (const auto& [folder, may] : allowed) {
    ASSERT_TRUE(fs::is_directory(root / folder)) << "the floors table lists " << folder << "/, which does not exist";
    for (const auto& file : fs::directory_iterator(root / folder)) {
      const std::string ext = file.path().extension().string();
      if (ext != ".h" && ext != ".cpp" && ext != ".cu" && ext != ".cuh") continue;
      std::ifstream in(file.path());
      std::smatch m;
      for (std::string line; std::getline(in, line);)
        if (std::regex_search(line, m, include) && !may.count(m[1].str()))
          violations += "\n  " + folder + "/" + file.path().filename().string() + " includes " + m[1].str() + "/";
    }
  }
  EXPECT_TRUE(violations.empty()) << "includes the floors table does not allow (fix the code, or the table with the "
                                     "reason):" << violations;
}

}  // namespace
}  // namespace pgolf

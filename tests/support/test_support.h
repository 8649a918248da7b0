// Shared helpers for the tests: where the repo's samples are, synthetic tensors, temp folders.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pgolf::test {

std::string source_dir();                // the repo root
std::string sample_path(const std::string& relative);  // samples/<relative>
std::string shared_dir();                // ../shared beside the repo ("" when absent)

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);

// Synthetic tensors (deterministic in seed): the distributions codecs must survive.
enum class Distribution { Gaussian, Laplacian, HeavyTailed, ConstantRows, ZeroRows };
std::vector<float> synthetic(Distribution d, int64_t rows, int64_t cols, uint64_t seed, float scale = 0.02f);

// H = XᵀX/n [dim, dim] of inputs with correlated features and uneven scales, as activations have
// (samples: 4·dim when 0): a calibration Hessian for codec tests.
std::vector<float> correlated_hessian(int64_t dim, uint64_t seed, int64_t samples = 0);

}  // namespace pgolf::test

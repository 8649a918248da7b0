#include "support/test_support.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>

namespace pgolf::test {

std::string source_dir() { return PGOLF_SOURCE_DIR; }
std::string sample_path(const std::string& relative) { return source_dir() + "/samples/" + relative; }
std::string shared_dir() {
  auto p = std::filesystem::path(source_dir()).parent_path() / "shared";
  return std::filesystem::exists(p) ? p.string() : std::string();
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          ("pgolf-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<float> synthetic(Distribution d, int64_t rows, int64_t cols, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
  std::student_t_distribution<float> student(2.5f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    float row_constant = scale * normal(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float& x = v[static_cast<size_t>(r * cols + c)];
      switch (d) {
        case Distribution::Gaussian: x = scale * normal(rng); break;
        case Distribution::Laplacian: {
          float u = uniform(rng);
          x = -scale / std::sqrt(2.f) * std::copysign(std::log(1.f - 2.f * std::fabs(u)), u);
          break;
        }
        case Distribution::HeavyTailed: x = scale * student(rng); break;
        case Distribution::ConstantRows: x = row_constant; break;
        case Distribution::ZeroRows: x = (r % 3 == 0) ? 0.f : scale * normal(rng); break;
      }
    }
  }
  return v;
}

std::vector<float> correlated_hessian(int64_t dim, uint64_t seed, int64_t samples) {
  samples = samples ? samples : 4 * dim;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> mix(static_cast<size_t>(dim * dim));
  for (auto& m : mix) m = normal(rng) / std::sqrt(static_cast<double>(dim));
  std::vector<double> h(static_cast<size_t>(dim * dim), 0);
  std::vector<double> z(static_cast<size_t>(dim)), x(static_cast<size_t>(dim));
  for (int64_t s = 0; s < samples; ++s) {
    for (auto& v : z) v = normal(rng);
    for (int64_t i = 0; i < dim; ++i) {
      double scale = 0.2 + 3.0 * static_cast<double>(i % 7) / 7.0;
      x[i] = scale * (0.6 * z[i] + 0.4 * [&] {
               double acc = 0;
               for (int64_t k = 0; k < dim; ++k) acc += mix[static_cast<size_t>(i * dim + k)] * z[k];
               return acc;
             }());
    }
    for (int64_t i = 0; i < dim; ++i)
      for (int64_t j = 0; j < dim; ++j) h[static_cast<size_t>(i * dim + j)] += x[i] * x[j];
  }
  std::vector<float> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = static_cast<float>(h[i] / static_cast<double>(samples));
  return out;
}

}  // namespace pgolf::test

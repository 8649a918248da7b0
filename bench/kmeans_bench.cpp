// Rate and distortion of the k-means codec on base9's quantized matrices (every 2-D tensor with more
// than 65,536 elements: 55 of them, 17,039,360 values), read against the reference pipeline's figures
// (shared/checkpoints/base9/README.md): k-means K=256 rel. MSE 4.40e-4, K=64 2.30e-3; int6 absmax
// 9.55e-4, its symbols 11,283,816 zstd-22 bytes (the int6 row here measures that in the same run).
// Time: encoding all 55 (MB/s of fp32 input). Counters: rel_mse = sum sq error / sum sq reference;
// symbols_zstd22 = bytes of the symbol streams concatenated in name order, compressed once;
// symbols_entropy = each tensor's order-0 symbol entropy, summed, in bytes.
#include <benchmark/benchmark.h>

#include <cmath>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "quant/distortion.h"
#include "quant/tensor_codec.h"

namespace pgolf {
namespace {

struct Matrix {
  std::vector<float> values;
  TensorShape shape;
};

const std::vector<Matrix>& quantized_matrices() {
  static const std::vector<Matrix> matrices = [] {
    auto ckpt = Checkpoint::open({std::string(PGOLF_SOURCE_DIR) + "/samples/base9"});
    std::vector<Matrix> out;
    for (const auto& t : ckpt.tensors())
      if (t.shape.size() == 2 && t.numel() > 65536) out.push_back({t.to_floats(), TensorShape{t.shape}});
    return out;
  }();
  return matrices;
}

double entropy_bits(std::span<const uint8_t> bytes) {
  SymbolHistogram h;
  h.add(bytes);
  return 8 * h.entropy_bytes();
}

void BM_RateDistortion(benchmark::State& state, const char* spec) {
  const auto& matrices = quantized_matrices();
  auto codec = make_tensor_codec(spec);
  std::vector<std::vector<Stream>> encoded(matrices.size());
  int64_t values = 0;
  for (const auto& m : matrices) values += m.shape.numel();
  for (auto _ : state)
    for (size_t i = 0; i < matrices.size(); ++i) encoded[i] = codec->encode(matrices[i].values, matrices[i].shape);
  state.SetBytesProcessed(state.iterations() * values * 4);

  Distortion total;
  std::vector<uint8_t> symbols;
  double bits = 0;
  for (size_t i = 0; i < matrices.size(); ++i) {
    std::vector<std::span<const uint8_t>> views;
    for (const auto& s : encoded[i]) views.emplace_back(s.bytes);
    total.add(Distortion::measure(matrices[i].values, codec->decode(views, matrices[i].shape)));
    symbols.insert(symbols.end(), encoded[i][0].bytes.begin(), encoded[i][0].bytes.end());
    bits += entropy_bits(encoded[i][0].bytes);
  }
  state.counters["rel_mse"] = total.relative_mse();
  state.counters["symbols_zstd22"] = static_cast<double>(make_byte_codec("zstd:22")->encode(symbols).size());
  state.counters["symbols_entropy"] = bits / 8;
}

#define PGOLF_RD(name, spec) \
  BENCHMARK_CAPTURE(BM_RateDistortion, name, spec)->Unit(benchmark::kMillisecond)->Iterations(1)

PGOLF_RD(int6, "int6");
PGOLF_RD(kmeans256, "kmeans:k=256");
PGOLF_RD(kmeans64, "kmeans:k=64");
PGOLF_RD(kmeans256_kmeanspp, "kmeans:k=256,init=kmeanspp");
PGOLF_RD(kmeans64_kmeanspp, "kmeans:k=64,init=kmeanspp");
PGOLF_RD(kmeans256_exact, "kmeans:k=256,method=exact");
PGOLF_RD(kmeans64_exact, "kmeans:k=64,method=exact");
PGOLF_RD(ecsq256_quantile_1.75e-4, "kmeans:k=256,method=ecsq,lambda=0.000175");
PGOLF_RD(ecsq256_1e-4, "kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.0001");
PGOLF_RD(ecsq256_1.75e-4, "kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.000175");
PGOLF_RD(ecsq256_2.5e-4, "kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.00025");
PGOLF_RD(ecsq64_1.75e-4, "kmeans:k=64,init=kmeanspp,method=ecsq,lambda=0.000175");

}  // namespace
}  // namespace pgolf

// Speed of the tensor codecs and byte codecs, in MB/s of input, on real base9 weights.
// Every figure is read against a reference in the same run (memcpy of the same bytes, and
// zstd:3 next to zstd:22), because these machines are noisy.
#include <benchmark/benchmark.h>

#include <cstring>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "quant/tensor_codec.h"

namespace pgolf {
namespace {

// The largest matrices of base9 as fp32: tok_emb and every MLP weight (9.96 M values).
const std::vector<float>& weights() {
  static const std::vector<float> w = [] {
    auto ckpt = Checkpoint::open({std::string(PGOLF_SOURCE_DIR) + "/samples/base9"});
    std::vector<float> all;
    for (const auto& t : ckpt.tensors()) {
      if (t.name != "tok_emb.weight" && t.name.find(".mlp.") == std::string::npos) continue;
      auto v = t.to_floats();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  }();
  return w;
}

constexpr int64_t kCols = 512;

void BM_Memcpy(benchmark::State& state) {
  const auto& w = weights();
  std::vector<float> out(w.size());
  for (auto _ : state) {
    std::memcpy(out.data(), w.data(), w.size() * 4);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.size() * 4));
}
BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond);

void BM_Encode(benchmark::State& state, const char* spec) {
  const auto& w = weights();
  auto codec = make_tensor_codec(spec);
  TensorShape shape{{static_cast<int64_t>(w.size()) / kCols, kCols}};
  for (auto _ : state) benchmark::DoNotOptimize(codec->encode(w, shape));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.size() * 4));
}

void BM_Decode(benchmark::State& state, const char* spec) {
  const auto& w = weights();
  auto codec = make_tensor_codec(spec);
  TensorShape shape{{static_cast<int64_t>(w.size()) / kCols, kCols}};
  auto streams = codec->encode(w, shape);
  for (auto _ : state) benchmark::DoNotOptimize(decode_streams(*codec, streams, shape));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.size() * 4));
}

BENCHMARK_CAPTURE(BM_Encode, int6, "int6")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, int8, "int8")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, int5_quantile, "int5:clip=quantile:0.9999")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, int6_std, "int6:clip=std:12.85")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, int8_mse, "int8:clip=mse")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, fp16, "fp16")->Unit(benchmark::kMillisecond);
// The codec zoo: one run of each of the slow encoders (k-means, SVD) is enough to read.
BENCHMARK_CAPTURE(BM_Encode, kmeans16, "kmeans:k=16")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Encode, kmeans256_ecsq, "kmeans:k=256,init=kmeanspp,method=ecsq,lambda=0.000175")
    ->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Encode, prune3_int6, "prune:0.03+int6")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, lowrank64_int8, "lowrank:rank=64+int8")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Encode, int6_lrcorr4, "int6+lrcorr:rank=4")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_Decode, int6, "int6")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, fp16, "fp16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, kmeans16, "kmeans:k=16")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, prune3_int6, "prune:0.03+int6")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, lowrank64_int8, "lowrank:rank=64+int8")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, int6_lrcorr4, "int6+lrcorr:rank=4")->Unit(benchmark::kMillisecond);

// Byte codecs on base9's int6 symbols (MB/s of symbol bytes).
const std::vector<uint8_t>& int6_symbols() {
  static const std::vector<uint8_t> s = [] {
    const auto& w = weights();
    return make_tensor_codec("int6")->encode(w, TensorShape{{static_cast<int64_t>(w.size()) / kCols, kCols}})[0].bytes;
  }();
  return s;
}

void BM_ByteEncode(benchmark::State& state, const char* spec) {
  const auto& raw = int6_symbols();
  auto codec = make_byte_codec(spec);
  size_t size = 0;
  for (auto _ : state) size = codec->encode(raw).size();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size()));
  state.counters["ratio"] = static_cast<double>(size) / static_cast<double>(raw.size());
}

void BM_ByteDecode(benchmark::State& state, const char* spec) {
  const auto& raw = int6_symbols();
  auto codec = make_byte_codec(spec);
  auto enc = codec->encode(raw);
  for (auto _ : state) benchmark::DoNotOptimize(codec->decode(enc, raw.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size()));
}

BENCHMARK_CAPTURE(BM_ByteEncode, zstd3, "zstd:3")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ByteEncode, zstd22, "zstd:22")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_ByteEncode, zlib9, "zlib:9")->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_ByteDecode, zstd3, "zstd:3")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ByteDecode, zstd22, "zstd:22")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ByteDecode, zlib9, "zlib:9")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pgolf

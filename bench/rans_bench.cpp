// The rans byte codec against zstd on base9's int6 symbol stream, built as the artifact builds it:
// the int6 symbols of every 2-D tensor over 65,536 elements, in name order (17.0 M symbols).
// Speeds are MB/s of symbols per core: the process's CPU time, which counts the threads zstd
// compresses its 4 MiB frames on; zstd:3 and zstd:22 run beside rans as references, because
// these machines are noisy. Counters: the coded size in bytes and, for rans, the
// order-0 entropy of its blocks (the size a perfect coder with per-block tables would reach).
#include <benchmark/benchmark.h>

#include <algorithm>

#include "codecs/byte_codec.h"
#include "codecs/byte_histogram.h"
#include "quant/safetensors.h"
#include "quant/tensor_codec.h"

namespace pgolf {
namespace {

const std::vector<uint8_t>& int6_stream() {
  static const std::vector<uint8_t> stream = [] {
    auto ckpt = Checkpoint::open({std::string(PGOLF_SOURCE_DIR) + "/samples/base9"});
    auto codec = make_tensor_codec("int6");
    std::vector<uint8_t> all;
    for (const auto& t : ckpt.tensors()) {
      if (t.shape.size() != 2 || t.numel() <= 65536) continue;
      auto streams = codec->encode(t.to_floats(), TensorShape{t.shape});
      all.insert(all.end(), streams[0].bytes.begin(), streams[0].bytes.end());
    }
    return all;
  }();
  return stream;
}

double block_entropy_bytes(std::span<const uint8_t> data, size_t block) {
  double total = 0;
  for (size_t begin = 0; begin < data.size(); begin += block) {
    ByteHistogram histogram;
    histogram.add(data.subspan(begin, std::min(block, data.size() - begin)));
    total += histogram.entropy_bytes();
  }
  return total;
}

void BM_Int6StreamEncode(benchmark::State& state, const char* spec) {
  const auto& raw = int6_stream();
  auto codec = make_byte_codec(spec);
  size_t size = 0;
  for (auto _ : state) size = codec->encode(raw).size();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size()));
  state.counters["bytes"] = static_cast<double>(size);
  std::string canonical = codec->spec();
  if (canonical.starts_with("rans:block="))
    state.counters["entropy"] = block_entropy_bytes(raw, std::stoul(canonical.substr(canonical.find('=') + 1)));
}

void BM_Int6StreamDecode(benchmark::State& state, const char* spec) {
  const auto& raw = int6_stream();
  auto codec = make_byte_codec(spec);
  auto encoded = codec->encode(raw);
  for (auto _ : state) benchmark::DoNotOptimize(codec->decode(encoded, raw.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size()));
}

BENCHMARK_CAPTURE(BM_Int6StreamEncode, rans, "rans")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, rans_64k, "rans:block=65536")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, rans_1m, "rans:block=1048576")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, rans_4m, "rans:block=4194304")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, rans_whole, "rans:block=67108864")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, zstd3, "zstd:3")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamEncode, zstd22, "zstd:22")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6StreamDecode, rans, "rans")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamDecode, zstd3, "zstd:3")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6StreamDecode, zstd22, "zstd:22")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

}  // namespace
}  // namespace pgolf

// The rans byte codec against zstd on base9's int6 symbol stream, built as the artifact builds it:
// the int6 symbols of every 2-D tensor over 65,536 elements, in name order (17.0 M symbols).
// Speeds are MB/s of symbols per core: the process's CPU time, which counts the threads zstd
// compresses its 4 MiB frames on; zstd:3 and zstd:22 run beside rans as references, because
// these machines are noisy. Counters: the coded size in bytes and, for rans, the
// order-0 entropy of its blocks (the size a perfect coder with per-block tables would reach).
// Also: rans:width=2 on ECSQ's symbols as 16-bit values, and bits per int6 symbol per tensor class.
#include <benchmark/benchmark.h>

#include <algorithm>

#include "checkpoint/safetensors.h"
#include "codecs/byte_codec.h"
#include "codecs/symbol_histogram.h"
#include "quant/tensor_codec.h"

namespace pgolf {
namespace {

// The symbols of `spec` for every quantized tensor whose name contains `part`, in name order,
// `width` bytes each (little-endian, sign-extended).
std::vector<uint8_t> symbol_stream(const std::string& spec, const std::string& part = "", int width = 1) {
  static const Checkpoint ckpt = Checkpoint::open({std::string(PGOLF_SOURCE_DIR) + "/samples/base9"});
  auto codec = make_tensor_codec(spec);
  std::vector<uint8_t> all;
  for (const auto& t : ckpt.tensors()) {
    if (t.shape.size() != 2 || t.numel() <= 65536 || t.name.find(part) == std::string::npos) continue;
    const Stream symbols = codec->encode(t.to_floats(), TensorShape{t.shape})[0];
    for (size_t i = 0; i < symbols.bytes.size(); i += symbols.element_bytes)
      for (int k = 0; k < width; ++k)
        all.push_back(k < symbols.element_bytes ? symbols.bytes[i + k] : symbols.bytes[i + symbols.element_bytes - 1] & 0x80 ? 0xFF : 0);
  }
  return all;
}

const std::vector<uint8_t>& int6_stream() {
  static const std::vector<uint8_t> stream = symbol_stream("int6");
  return stream;
}

// ECSQ symbols at int6's error (one step for every tensor, the one `ecsq:totalrelmse=9.5e-4` finds
// on base9), all as 16-bit symbols: the wide alphabet rans:width=2 codes.
const std::vector<uint8_t>& ecsq_wide_stream() {
  static const std::vector<uint8_t> stream = symbol_stream("ecsq:step=0.0298251603", "", 2);
  return stream;
}

double block_entropy_bytes(std::span<const uint8_t> data, size_t block) {
  double total = 0;
  for (size_t begin = 0; begin < data.size(); begin += block) {
    SymbolHistogram histogram;
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

void BM_EcsqWideEncode(benchmark::State& state, const char* spec) {
  const auto& raw = ecsq_wide_stream();
  auto codec = make_byte_codec(spec);
  size_t size = 0;
  for (auto _ : state) size = codec->encode(raw).size();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size() / 2));  // MB/s of symbols
  state.counters["bytes"] = static_cast<double>(size);
}

void BM_EcsqWideDecode(benchmark::State& state, const char* spec) {
  const auto& raw = ecsq_wide_stream();
  auto codec = make_byte_codec(spec);
  auto encoded = codec->encode(raw);
  for (auto _ : state) benchmark::DoNotOptimize(codec->decode(encoded, raw.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * raw.size() / 2));
}

// Bits per int6 symbol of one tensor class (its symbols coded on their own) against their order-0
// entropy and zstd:22.
void BM_Int6ClassBits(benchmark::State& state, const char* part) {
  const auto raw = symbol_stream("int6", part);
  size_t rans = 0;
  for (auto _ : state) rans = make_byte_codec("rans")->encode(raw).size();
  SymbolHistogram histogram;
  histogram.add(raw);
  const double symbols = static_cast<double>(raw.size());
  state.counters["symbols"] = symbols;
  state.counters["rans_bits"] = 8.0 * static_cast<double>(rans) / symbols;
  state.counters["entropy_bits"] = 8.0 * histogram.entropy_bytes() / symbols;
  state.counters["zstd22_bits"] = 8.0 * static_cast<double>(make_byte_codec("zstd:22")->encode(raw).size()) / symbols;
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

BENCHMARK_CAPTURE(BM_EcsqWideEncode, rans_wide, "rans:width=2")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EcsqWideEncode, zstd3, "shuffle:2+zstd:3")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EcsqWideDecode, rans_wide, "rans:width=2")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_EcsqWideDecode, zstd3, "shuffle:2+zstd:3")->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK_CAPTURE(BM_Int6ClassBits, attn_q, "attn.c_q")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, attn_k, "attn.c_k")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, attn_v, "attn.c_v")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, attn_proj, "attn.proj")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, mlp_fc, "mlp.fc")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, mlp_proj, "mlp.proj")->Iterations(1);
BENCHMARK_CAPTURE(BM_Int6ClassBits, tok_emb, "tok_emb")->Iterations(1);

}  // namespace
}  // namespace pgolf

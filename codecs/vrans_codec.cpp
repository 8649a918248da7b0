// The vrans encoder; the format is in rans_format.h. Symbols go in backwards (the last first), so
// that the decoder reads them, and the words, forwards.
#include <algorithm>
#include <bit>
#include <vector>

#include "codecs/byte_codec_registry.h"
#include "codecs/byte_decoder_registry.h"
#include "codecs/rans_format.h"

namespace pgolf {

namespace {

using namespace rans;

struct SymbolCode {
  uint32_t freq = 0;
  uint32_t start = 0;
};

class VransCodec final : public ByteCodec {
 public:
  std::string spec() const override { return "vrans"; }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    const size_t n = raw.size();
    const auto lanes = static_cast<uint32_t>(
        std::clamp<size_t>(std::bit_floor(std::max<size_t>(1, n / kVectorSymbolsPerLane)), 1, kVectorMaxLanes));
    std::vector<uint8_t> out;
    put_varint(out, lanes);
    // Each block's table; a block of one value codes nothing.
    const size_t blocks = (n + kDefaultBlock - 1) / kDefaultBlock;
    std::vector<std::vector<SymbolCode>> codes(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      auto block = raw.subspan(b * kDefaultBlock, std::min(kDefaultBlock, n - b * kDefaultBlock));
      const std::vector<uint64_t> counts = count_bytes(block);
      std::vector<uint32_t> present;
      for (uint32_t v = 0; v < 256; ++v)
        if (counts[v] != 0) present.push_back(v);
      put_runs(out, present);
      if (present.size() < 2) continue;
      const std::vector<uint32_t> freq = normalise(counts, block.size(), VectorAlphabet::kTotal);
      codes[b].resize(256);
      uint32_t start = 0;
      for (uint32_t v : present) {
        put_varint(out, freq[v]);
        codes[b][v] = {freq[v], start};
        start += freq[v];
      }
    }
    std::vector<uint32_t> state(lanes, kVectorStateLow);
    std::vector<uint16_t> words;  // in the order written: the decoder reads them backwards
    for (size_t i = n; i-- > 0;) {
      const auto& table = codes[i / kDefaultBlock];
      if (table.empty()) continue;
      const SymbolCode c = table[raw[i]];
      uint32_t& x = state[i % lanes];
      if (x >= (uint32_t{kVectorStateLow >> VectorAlphabet::kScaleBits} << 16) * c.freq) {
        words.push_back(static_cast<uint16_t>(x));
        x >>= 16;
      }
      x = (x / c.freq << VectorAlphabet::kScaleBits) + x % c.freq + c.start;
    }
    for (uint32_t x : state)
      for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(x >> (8 * k)));
    for (size_t w = words.size(); w-- > 0;) {
      out.push_back(static_cast<uint8_t>(words[w]));
      out.push_back(static_cast<uint8_t>(words[w] >> 8));
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ByteCodec> make_vrans_codec(const SpecStage& stage) {
  require_no_params(stage);
  return std::make_unique<VransCodec>();
}

}  // namespace pgolf

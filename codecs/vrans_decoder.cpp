// The vrans decoder, one symbol at a time (the numpy decoder takes a step of L lanes at once, to
// the same result); the format is in rans_format.h.
#include <bit>
#include <vector>

#include "codecs/byte_decoder_registry.h"
#include "codecs/rans_format.h"
#include "core/error.h"

namespace pgolf {

namespace {

using namespace rans;

constexpr uint32_t kTotal = VectorAlphabet::kTotal;
constexpr int kIndexBits = VectorAlphabet::kIndexBits, kScaleBits = VectorAlphabet::kScaleBits;

// A block's slot table (as rans reads it), or one value filling the block.
struct BlockTable {
  uint32_t only = 0;
  std::vector<VectorAlphabet::Entry> slots;  // kTotal entries; empty for a block of one value
};

BlockTable read_table(Reader& in) {
  BlockTable t;
  const std::vector<uint32_t> present = read_runs(in, 256, 1, 128, 256);
  if (present.size() == 1) {
    t.only = present[0];
    return t;
  }
  t.slots.resize(kTotal);
  read_frequencies<uint8_t>(in, present, t.slots);
  return t;
}

class VransDecoder final : public ByteDecoder {
 public:
  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    Reader in(encoded);
    const uint32_t lanes = in.varint();
    if (lanes == 0 || lanes > kVectorMaxLanes || !std::has_single_bit(lanes)) corrupt("bad lane count");
    // A block's table takes at least 2 bytes, which bounds raw_size before allocating.
    const size_t blocks = (raw_size + kDefaultBlock - 1) / kDefaultBlock;
    if (blocks > encoded.size() / 2) corrupt("too short for its size");
    std::vector<BlockTable> tables;
    for (size_t b = 0; b < blocks; ++b) tables.push_back(read_table(in));
    std::vector<uint32_t> state(lanes);
    for (uint32_t& x : state) {
      const auto bytes = in.take(4);
      x = uint32_t{bytes[0]} | uint32_t{bytes[1]} << 8 | uint32_t{bytes[2]} << 16 | uint32_t{bytes[3]} << 24;
      if (x < kVectorStateLow) corrupt("bad initial state");
    }
    if (in.remaining() % 2 != 0) corrupt("the words are not whole");
    const auto words = in.take(in.remaining());
    size_t next = 0;
    std::vector<uint8_t> out(raw_size);
    for (size_t i = 0; i < raw_size; ++i) {
      const BlockTable& t = tables[i / kDefaultBlock];
      if (t.slots.empty()) {
        out[i] = static_cast<uint8_t>(t.only);
        continue;
      }
      uint32_t& x = state[i % lanes];
      const VectorAlphabet::Entry entry = t.slots[x & (kTotal - 1)];
      out[i] = static_cast<uint8_t>(entry);
      x = (entry >> (kIndexBits + kScaleBits)) * (x >> kScaleBits) + ((entry >> kIndexBits) & (kTotal - 1));
      if (x < kVectorStateLow) {
        if (next == words.size()) corrupt("it runs out of words");
        x = x << 16 | uint32_t{words[next]} | uint32_t{words[next + 1]} << 8;
        next += 2;
      }
    }
    if (next != words.size()) corrupt("words left over");
    for (uint32_t x : state)
      if (x != kVectorStateLow) corrupt("a lane does not decode to its initial state");
    return out;
  }
};

}  // namespace

std::unique_ptr<ByteDecoder> make_vrans_decoder(const SpecStage& stage) {
  require_no_params(stage);
  return std::make_unique<VransDecoder>();
}

}  // namespace pgolf

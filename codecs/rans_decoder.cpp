// The rANS decoder; the format is in rans_format.h.
#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "codecs/byte_decoder_registry.h"
#include "codecs/rans_format.h"
#include "core/error.h"

namespace pgolf {

namespace rans {

void corrupt(const char* what) { throw InputError(std::string("corrupt rans stream: ") + what); }

// Reads the runs of present values (at most max_runs runs, values below value_limit).
std::vector<uint32_t> read_runs(Reader& in, uint32_t value_limit, uint32_t min_runs, uint32_t max_runs, uint32_t max_values) {
  uint32_t run_count = in.varint();
  if (run_count < min_runs || run_count > max_runs) corrupt("bad run count in a frequency table");
  std::vector<uint32_t> values;
  uint64_t next = 0;  // 64 bits: gap and length are unchecked 32-bit values here
  for (uint32_t r = 0; r < run_count; ++r) {
    uint64_t first = next + in.varint(), last = first + in.varint();
    if (last >= value_limit) corrupt("a symbol run goes past the largest symbol");
    if (values.size() + (last - first + 1) > max_values) corrupt("more symbols than table slots");
    for (uint64_t s = first; s <= last; ++s) values.push_back(static_cast<uint32_t>(s));
    next = last + 1;
  }
  return values;
}

}  // namespace rans

namespace {

using namespace rans;

uint32_t load_word(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// The decoder's table has one entry per slot: index | (slot - start) << kIndexBits | freq << (kIndexBits + kScaleBits).
static_assert(8 + 2 * Alphabet<uint8_t>::kScaleBits <= 32 && 3 * Wide::kScaleBits <= 64, "slot entries hold their fields");

// Reads the frequencies of `symbols` (two or more) and decodes the block's words into `block`.
template <typename Index>
void decode_indices(Reader& in, std::span<const uint32_t> symbols, std::span<Index> block) {
  using Entry = typename Alphabet<Index>::Entry;
  constexpr int kIndexBits = Alphabet<Index>::kIndexBits, kScaleBits = Alphabet<Index>::kScaleBits;
  constexpr uint32_t kTotal = Alphabet<Index>::kTotal;
  std::array<Entry, kTotal> slot_entries;
  read_frequencies<Index>(in, symbols, slot_entries);

  uint32_t word_count = in.varint();
  if (word_count < 2 * kLanes) corrupt("a block is too short for its states");
  std::span<const uint8_t> words = in.take(size_t{word_count} * 4);
  const uint8_t* pos = words.data();
  const uint8_t* const end = pos + words.size();
  std::array<uint64_t, kLanes> state;
  for (auto& x : state) {
    x = uint64_t{load_word(pos)} << 32 | load_word(pos + 4);
    pos += 8;
    if (x < kStateLow || x >> 63 != 0) corrupt("bad initial state");
  }

  // Decodes one symbol; returns the state before it is refilled.
  auto decode_symbol = [&slot_entries](uint64_t x, Index& symbol) {
    Entry entry = slot_entries[x & (kTotal - 1)];
    symbol = static_cast<Index>(entry & ((Entry{1} << kIndexBits) - 1));
    return static_cast<uint64_t>(entry >> (kIndexBits + kScaleBits)) * (x >> kScaleBits) +
           static_cast<uint64_t>((entry >> kIndexBits) & (kTotal - 1));
  };
  Index* out = block.data();
  size_t i = 0;
  // While a whole group's words are surely there, refill without a branch to mispredict: load the
  // next word always, and take it in (and step past it) only when the state has run low.
  for (; i + kLanes <= block.size() && static_cast<size_t>(end - pos) >= 4 * kLanes; i += kLanes)
    for (int lane = 0; lane < kLanes; ++lane) {
      uint64_t x = decode_symbol(state[lane], out[i + lane]);
      uint64_t refill = 0 - uint64_t{x < kStateLow};  // all ones when the state ran low
      state[lane] = ((x << 32 | load_word(pos)) & refill) | (x & ~refill);
      pos += 4 & refill;
    }
  for (; i < block.size(); ++i) {
    uint64_t& x = state[i % kLanes];
    x = decode_symbol(x, out[i]);
    if (x < kStateLow) {
      if (pos == end) corrupt("a block runs out of words");
      x = x << 32 | load_word(pos);
      pos += 4;
    }
  }

  if (pos != end) corrupt("a block has words left over");
  for (uint64_t x : state)
    if (x != kStateLow) corrupt("a block does not decode to its initial state");
}

void decode_byte_block(Reader& in, std::span<uint8_t> block) {
  const std::vector<uint32_t> present = read_runs(in, 256, 1, 128, 256);
  if (present.size() == 1)
    std::fill(block.begin(), block.end(), static_cast<uint8_t>(present[0]));
  else
    decode_indices(in, std::span<const uint32_t>(present), block);
}

void decode_wide_block(Reader& in, std::span<uint8_t> bytes) {
  const size_t n = bytes.size() / 2;
  const std::vector<uint32_t> table = read_runs(in, 65536, 0, Wide::kTotal, Wide::kTotal);
  const uint32_t escapes = in.varint();
  if (escapes > n) corrupt("more escapes than symbols");
  const size_t alphabet = table.size() + (escapes != 0);
  if (alphabet == 0 || alphabet > Wide::kTotal) corrupt("a block's table is empty or too large");
  std::vector<uint16_t> indices(n);  // zero: the only index of a one-symbol block
  if (alphabet > 1) {
    std::vector<uint32_t> symbols(alphabet);
    for (uint32_t k = 0; k < alphabet; ++k) symbols[k] = k;
    decode_indices(in, std::span<const uint32_t>(symbols), std::span<uint16_t>(indices));
  }
  std::span<const uint8_t> escaped = in.take(size_t{escapes} * 2);
  size_t next_escape = 0;
  for (size_t i = 0; i < n; ++i) {
    if (indices[i] < table.size()) {
      bytes[2 * i] = static_cast<uint8_t>(table[indices[i]]);
      bytes[2 * i + 1] = static_cast<uint8_t>(table[indices[i]] >> 8);
    } else {
      if (next_escape == escaped.size()) corrupt("more escaped symbols than escaped values");
      bytes[2 * i] = escaped[next_escape];
      bytes[2 * i + 1] = escaped[next_escape + 1];
      next_escape += 2;
    }
  }
  if (next_escape != escaped.size()) corrupt("escaped values left over");
}

class RansDecoder final : public ByteDecoder {
 public:
  explicit RansDecoder(Settings settings) : block_(settings.block), width_(settings.width) {}

  std::vector<uint8_t> decode(std::span<const uint8_t> encoded, size_t raw_size) const override {
    require(raw_size % width_ == 0, "corrupt rans stream: a size of " + std::to_string(raw_size) +
                                        " bytes is not whole symbols of " + std::to_string(width_) + " bytes");
    // A block's record takes at least kMinBlockRecord bytes, which bounds raw_size before allocating.
    size_t blocks = raw_size / block_ + (raw_size % block_ != 0);
    require(blocks <= encoded.size() / kMinBlockRecord,
            "corrupt rans stream: " + std::to_string(encoded.size()) + " bytes cannot hold " +
                std::to_string(raw_size) + " bytes in blocks of " + std::to_string(block_));
    std::vector<uint8_t> out(raw_size);
    Reader in(encoded);
    for (size_t begin = 0; begin < raw_size; begin += block_) {
      auto block = std::span(out).subspan(begin, std::min(block_, raw_size - begin));
      width_ == 1 ? decode_byte_block(in, block) : decode_wide_block(in, block);
    }
    if (in.remaining() != 0) corrupt("bytes left over after the last block");
    return out;
  }

 private:
  size_t block_;
  size_t width_;
};

}  // namespace

rans::Settings rans::settings_of(const SpecStage& stage) {
  auto block_text = stage.get("block");
  auto width_text = stage.get("width");
  long block = block_text ? parse_integer(*block_text, "rans block size") : static_cast<long>(kDefaultBlock);
  long width = width_text ? parse_integer(*width_text, "rans symbol width") : 1;
  require(stage.params.size() == (block_text ? 1u : 0u) + (width_text ? 1u : 0u) && block >= 1 &&
              block <= static_cast<long>(kMaxBlock) && (width == 1 || width == 2) && block % width == 0,
          "rans takes an optional block size in bytes from 1 to " + std::to_string(kMaxBlock) +
              " and symbol width 1 or 2 (bytes; the block a multiple of it), e.g. rans, rans:block=1048576 or "
              "rans:width=2 (got '" + stage.to_string() + "')");
  return {static_cast<size_t>(block), static_cast<size_t>(width)};
}

std::unique_ptr<ByteDecoder> make_rans_decoder(const SpecStage& stage) { return std::make_unique<RansDecoder>(rans::settings_of(stage)); }

}  // namespace pgolf

// "rans:block=N[,width=2]": static order-0 rANS for symbol streams: bytes (int6 indices and the
// like), or with width=2 16-bit little-endian symbols (ECSQ's wide alphabets).
// On base9's int6 symbols zstd:22 lands 0.8% above their order-0 entropy; this lands 0.07% above
// the entropy of its blocks, tables included, and below the entropy of the stream as a whole.
// The stream is cut into blocks of N bytes (the last may be shorter), each with its own frequency
// table, so the coder follows streams whose statistics change from tensor to tensor.
//
// Format: one record per block, nothing else (the block count follows from raw_size and N).
//   runs                 varint R (1..128), then R pairs (gap, length-1) as varints: the present
//                        symbols are runs of consecutive byte values; gap counts the absent values
//                        before a run (from 0 for the first, from the previous run's end after)
//   if one symbol:       nothing more: the block repeats it
//   else:                one varint frequency per present symbol (each >= 1, summing to 2^12),
//                        a varint word count W, then W little-endian 32-bit words: kLanes 64-bit
//                        initial states (high word first), then the renormalisation words in the
//                        order the decoder reads them.
// width=2 (blocks of N bytes, N even): each block codes the indices of a table of the values that
// occur often enough (at least one slot's worth: 2^14 * count >= symbols), plus an escape index
// for the rest, whose values follow the words raw:
//   runs                 as above over 0..65535: the table's values (R may be 0: all escaped)
//   escapes              varint E: how many symbols are escaped
//   if one index:        nothing more but the escaped values
//   else:                one varint frequency per table value then one for the escape if E > 0
//                        (summing to 2^14), the word count and words as above
//   escaped values       E little-endian 16-bit values, in order
// Symbol i of a block is coded by lane i % kLanes. States live in [2^31, 2^63) and move 32 bits at
// a time; the encoder starts every lane at 2^31, so the decoder must end every lane there.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "codecs/byte_codec_registry.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr int kLanes = 4;  // interleaved states, so the CPU overlaps their dependency chains
// Byte symbols: frequencies sum to 2^12, so the decoder's 16 KiB slot table stays in L1; on base9
// the smaller tables outweigh the coarser frequencies (2^11..2^16 all came within 0.01%).
// 16-bit symbols: 2^14, so wide alphabets' rare values keep frequencies near their counts.
template <typename Index>
struct Alphabet {
  using Entry = std::conditional_t<sizeof(Index) == 1, uint32_t, uint64_t>;  // the decoder's slot entry
  static constexpr int kScaleBits = sizeof(Index) == 1 ? 12 : 14;
  static constexpr uint32_t kTotal = uint32_t{1} << kScaleBits;
  static constexpr int kIndexBits = sizeof(Index) == 1 ? 8 : kScaleBits;  // a table index < kTotal
};
using Wide = Alphabet<uint16_t>;
constexpr uint64_t kStateLow = uint64_t{1} << 31;  // states live in [kStateLow, 2^63)
constexpr size_t kDefaultBlock = size_t{1} << 18;  // the smallest output on base9's int6 symbols
constexpr size_t kMaxBlock = size_t{1} << 26;
constexpr size_t kMinBlockRecord = 3;  // the smallest record: one run, one symbol

[[noreturn]] void corrupt(const char* what) { throw InputError(std::string("corrupt rans stream: ") + what); }

void put_varint(std::vector<uint8_t>& out, uint32_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

// Reads bytes from the encoded stream, checking every access against its end.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  size_t remaining() const { return bytes_.size() - pos_; }

  uint32_t varint() {
    uint32_t value = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      if (pos_ == bytes_.size()) corrupt("truncated");
      uint8_t byte = bytes_[pos_++];
      if (shift == 28 && byte > 0x0F) corrupt("varint overflows 32 bits");
      value |= static_cast<uint32_t>(byte & 0x7F) << shift;
      if (byte < 0x80) return value;
    }
    corrupt("varint overflows 32 bits");
  }
  std::span<const uint8_t> take(size_t count) {
    if (count > remaining()) corrupt("a block runs past the end of the stream");
    pos_ += count;
    return bytes_.subspan(pos_ - count, count);
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// Frequencies summing to total, each present symbol >= 1, that minimise the coded size
// sum(-count * log2(freq)): round, then move single units while that lowers the cost (the cost is
// convex in each frequency, so when no single move helps, none does).
std::vector<uint32_t> normalise(std::span<const uint64_t> counts, uint64_t length, uint32_t total) {
  const int alphabet = static_cast<int>(counts.size());
  std::vector<uint32_t> freq(counts.size());
  std::vector<double> gain(counts.size()), loss(counts.size());  // bits saved by freq + 1, bits lost by freq - 1
  auto update = [&](int s) {
    double c = static_cast<double>(counts[s]), f = freq[s];
    gain[s] = c * std::log2((f + 1) / f);
    loss[s] = f > 1 ? c * std::log2(f / (f - 1)) : std::numeric_limits<double>::infinity();
  };
  uint32_t sum = 0;
  for (int s = 0; s < alphabet; ++s) {
    if (counts[s] == 0) continue;
    freq[s] = static_cast<uint32_t>(std::max<uint64_t>(1, (2 * counts[s] * total + length) / (2 * length)));
    sum += freq[s];
    update(s);
  }
  auto best_gain = [&] {
    int best = -1;
    for (int s = 0; s < alphabet; ++s)
      if (counts[s] != 0 && (best < 0 || gain[s] > gain[best])) best = s;
    return best;
  };
  auto least_loss = [&] {
    int best = -1;
    for (int s = 0; s < alphabet; ++s)
      if (counts[s] != 0 && (best < 0 || loss[s] < loss[best])) best = s;
    return best;
  };
  for (; sum < total; ++sum) {
    int s = best_gain();
    ++freq[s];
    update(s);
  }
  for (; sum > total; --sum) {
    int s = least_loss();
    --freq[s];
    update(s);
  }
  while (true) {
    int up = best_gain(), down = least_loss();
    if (gain[up] <= loss[down] * (1 + 1e-12)) break;  // the margin keeps rounding from cycling
    ++freq[up];
    --freq[down];
    update(up);
    update(down);
  }
  return freq;
}

// The present values, ascending, as runs of consecutive values.
void put_runs(std::vector<uint8_t>& out, std::span<const uint32_t> values) {
  std::vector<std::pair<uint32_t, uint32_t>> runs;  // (first value, length)
  for (uint32_t v : values) {
    if (!runs.empty() && runs.back().first + runs.back().second == v)
      ++runs.back().second;
    else
      runs.emplace_back(v, 1);
  }
  put_varint(out, static_cast<uint32_t>(runs.size()));
  uint32_t next = 0;
  for (auto [first, length] : runs) {
    put_varint(out, first - next);
    put_varint(out, length - 1);
    next = first + length;
  }
}

// What the encoder needs per symbol, so its inner loop multiplies instead of dividing:
// x / freq == mulhi(x, reciprocal) >> shift, and the coded state
// (x / freq) * total + x % freq + start == x + bias + (x / freq) * (total - freq).
struct EncoderSymbol {
  uint64_t renorm_limit = 0;  // a state at or above this sheds 32 bits before coding the symbol
  uint64_t reciprocal = 0;
  uint32_t shift = 0;
  uint32_t bias = 0;
  uint32_t total_minus_freq = 0;
};

// For freq d >= 2 take s with 2^s < d <= 2^(s+1) and m = ceil(2^(64+s) / d) < 2^64. For x < 2^63,
// x*m / 2^(64+s) = x/d + x*(m*d - 2^(64+s)) / (d * 2^(64+s)), and since m*d - 2^(64+s) <= d - 1 and
// x*(d-1) < 2^(64+s), the second term stays below 1/d: the floor is exactly x / d.
// d == 1 has no such m; m = 2^64 - 1 gives x - 1 for every x >= 1, and the bias absorbs the 1.
EncoderSymbol encoder_symbol(uint32_t freq, uint32_t start, int scale_bits) {
  const uint32_t total = uint32_t{1} << scale_bits;
  EncoderSymbol e;
  e.renorm_limit = uint64_t{freq} << (63 - scale_bits);
  e.total_minus_freq = total - freq;
  if (freq == 1) {
    e.reciprocal = ~uint64_t{0};
    e.bias = start + total - 1;
  } else {
    e.shift = std::bit_width(freq - 1) - 1;
    unsigned __int128 power = static_cast<unsigned __int128>(1) << (64 + e.shift);
    e.reciprocal = static_cast<uint64_t>(power / freq + (power % freq != 0));
    e.bias = start;
  }
  return e;
}

// Codes one symbol into state x. The word it may shed is stored below next_word always and kept
// (next_word moves down) only when the state sheds: no branch to mispredict.
inline void encode_symbol(uint64_t& x, const EncoderSymbol& e, uint32_t*& next_word) {
  bool shed = x >= e.renorm_limit;
  next_word[-1] = static_cast<uint32_t>(x);
  next_word -= shed;
  x = shed ? x >> 32 : x;
  auto quotient = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * e.reciprocal) >> 64) >> e.shift;
  x += e.bias + quotient * e.total_minus_freq;
}

std::vector<uint64_t> count_bytes(std::span<const uint8_t> block) {
  // Four tables, so a run of one symbol does not serialise on its own counter.
  std::array<std::array<uint32_t, 256>, 4> partial{};
  size_t i = 0;
  for (; i + 4 <= block.size(); i += 4)
    for (int k = 0; k < 4; ++k) ++partial[k][block[i + k]];
  for (; i < block.size(); ++i) ++partial[0][block[i]];
  std::vector<uint64_t> counts(256);
  for (const auto& table : partial)
    for (int s = 0; s < 256; ++s) counts[s] += table[s];
  return counts;
}

// Codes a block of symbol indices (at least two of them present in counts): their frequencies,
// then the words.
template <typename Index>
void code_indices(std::span<const Index> block, std::span<const uint64_t> counts, std::vector<uint8_t>& out) {
  const std::vector<uint32_t> freq = normalise(counts, block.size(), Alphabet<Index>::kTotal);
  std::vector<EncoderSymbol> symbols(counts.size());
  uint32_t start = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    if (freq[s] == 0) continue;
    put_varint(out, freq[s]);
    symbols[s] = encoder_symbol(freq[s], start, Alphabet<Index>::kScaleBits);
    start += freq[s];
  }

  // Symbols go in backwards and words are stored from the top of the buffer down, so the decoder
  // reads both forwards. A symbol sheds at most one word; one spare word below the states takes
  // the last unconditional store.
  const size_t capacity = block.size() + 2 * kLanes + 1;
  auto words = std::make_unique_for_overwrite<uint32_t[]>(capacity);
  uint32_t* const top = words.get() + capacity;
  uint32_t* next_word = top;
  std::array<uint64_t, kLanes> state;
  state.fill(kStateLow);
  const size_t full = block.size() - block.size() % kLanes;
  for (size_t i = block.size(); i-- > full;) encode_symbol(state[i % kLanes], symbols[block[i]], next_word);
  for (size_t group = full; group != 0; group -= kLanes)
    for (int lane = kLanes; lane-- > 0;) encode_symbol(state[lane], symbols[block[group - kLanes + lane]], next_word);
  for (int lane = kLanes; lane-- > 0;) {
    *--next_word = static_cast<uint32_t>(state[lane]);
    *--next_word = static_cast<uint32_t>(state[lane] >> 32);
  }
  auto word_count = static_cast<size_t>(top - next_word);
  put_varint(out, static_cast<uint32_t>(word_count));
  size_t at = out.size();
  out.resize(at + 4 * word_count);
  for (const uint32_t* w = next_word; w != top; ++w, at += 4)
    for (int b = 0; b < 4; ++b) out[at + b] = static_cast<uint8_t>(*w >> (8 * b));
}

void encode_byte_block(std::span<const uint8_t> block, std::vector<uint8_t>& out) {
  const std::vector<uint64_t> counts = count_bytes(block);
  std::vector<uint32_t> present;
  for (uint32_t s = 0; s < 256; ++s)
    if (counts[s] != 0) present.push_back(s);
  put_runs(out, present);
  if (present.size() > 1) code_indices(block, counts, out);  // one symbol: the runs say it all
}

constexpr uint32_t kMaxTableValues = Wide::kTotal - 1;  // and one index for the escape

void encode_wide_block(std::span<const uint8_t> bytes, std::vector<uint8_t>& out) {
  const size_t n = bytes.size() / 2;
  std::vector<uint16_t> values(n);
  std::vector<uint32_t> value_counts(65536);
  for (size_t i = 0; i < n; ++i) ++value_counts[values[i] = static_cast<uint16_t>(bytes[2 * i] | bytes[2 * i + 1] << 8)];
  // A value earns a table entry when it would get at least one slot; the most frequent first.
  std::vector<uint32_t> table;
  for (uint32_t v = 0; v < 65536; ++v)
    if (value_counts[v] != 0 && uint64_t{value_counts[v]} * Wide::kTotal >= n) table.push_back(v);
  if (table.size() > kMaxTableValues) {
    std::stable_sort(table.begin(), table.end(), [&](uint32_t a, uint32_t b) { return value_counts[a] > value_counts[b]; });
    table.resize(kMaxTableValues);
    std::sort(table.begin(), table.end());
  }
  const auto escape = static_cast<uint16_t>(table.size());
  std::vector<uint16_t> index_of(65536, escape);
  for (size_t k = 0; k < table.size(); ++k) index_of[table[k]] = static_cast<uint16_t>(k);
  std::vector<uint16_t> indices(n);
  std::vector<uint64_t> counts(table.size() + 1);
  std::vector<uint8_t> escaped;
  for (size_t i = 0; i < n; ++i) {
    ++counts[indices[i] = index_of[values[i]]];
    if (indices[i] == escape) escaped.insert(escaped.end(), {bytes[2 * i], bytes[2 * i + 1]});
  }
  put_runs(out, table);
  put_varint(out, static_cast<uint32_t>(counts[escape]));
  if (table.size() + (counts[escape] != 0) > 1) code_indices<uint16_t>(indices, counts, out);
  out.insert(out.end(), escaped.begin(), escaped.end());
}

uint32_t load_word(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// The decoder's table has one entry per slot: index | (slot - start) << kIndexBits | freq << (kIndexBits + kScaleBits).
static_assert(8 + 2 * Alphabet<uint8_t>::kScaleBits <= 32 && 3 * Wide::kScaleBits <= 64, "slot entries hold their fields");

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

// Reads the frequencies of `symbols` into the decoder's slot table.
template <typename Index>
void read_frequencies(Reader& in, std::span<const uint32_t> symbols,
                      std::array<typename Alphabet<Index>::Entry, Alphabet<Index>::kTotal>& slot_entries) {
  using Entry = typename Alphabet<Index>::Entry;
  constexpr int kIndexBits = Alphabet<Index>::kIndexBits, kScaleBits = Alphabet<Index>::kScaleBits;
  constexpr uint32_t kTotal = Alphabet<Index>::kTotal;
  uint32_t start = 0;
  for (uint32_t s : symbols) {
    uint32_t freq = in.varint();
    if (freq == 0 || freq > kTotal - start) corrupt("frequencies do not sum to the table total");
    for (uint32_t offset = 0; offset < freq; ++offset)
      slot_entries[start + offset] = Entry{s} | Entry{offset} << kIndexBits | Entry{freq} << (kIndexBits + kScaleBits);
    start += freq;
  }
  if (start != kTotal) corrupt("frequencies do not sum to the table total");
}

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

class RansCodec final : public ByteCodec {
 public:
  RansCodec(size_t block, size_t width) : block_(block), width_(width) {}
  std::string spec() const override {
    return "rans:block=" + std::to_string(block_) + (width_ == 1 ? "" : ",width=" + std::to_string(width_));
  }
  std::string spec_for_symbols(int width) const override {
    return width == 2 && block_ % 2 == 0 ? RansCodec(block_, 2).spec() : ByteCodec::spec_for_symbols(width);
  }

  std::vector<uint8_t> encode(std::span<const uint8_t> raw) const override {
    require(raw.size() % width_ == 0, "rans:width=" + std::to_string(width_) + " codes whole symbols; " +
                                          std::to_string(raw.size()) + " bytes is not a multiple of the width");
    std::vector<uint8_t> out;
    for (size_t begin = 0; begin < raw.size(); begin += block_) {
      auto block = raw.subspan(begin, std::min(block_, raw.size() - begin));
      width_ == 1 ? encode_byte_block(block, out) : encode_wide_block(block, out);
    }
    return out;
  }

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
  size_t width_;  // bytes per symbol: 1 or 2
};

}  // namespace

std::unique_ptr<ByteCodec> make_rans_codec(const SpecStage& stage) {
  auto block_text = stage.get("block");
  auto width_text = stage.get("width");
  long block = block_text ? parse_integer(*block_text, "rans block size") : static_cast<long>(kDefaultBlock);
  long width = width_text ? parse_integer(*width_text, "rans symbol width") : 1;
  require(stage.params.size() == (block_text ? 1u : 0u) + (width_text ? 1u : 0u) && block >= 1 &&
              block <= static_cast<long>(kMaxBlock) && (width == 1 || width == 2) && block % width == 0,
          "rans takes an optional block size in bytes from 1 to " + std::to_string(kMaxBlock) +
              " and symbol width 1 or 2 (bytes; the block a multiple of it), e.g. rans, rans:block=1048576 or "
              "rans:width=2 (got '" + stage.to_string() + "')");
  return std::make_unique<RansCodec>(static_cast<size_t>(block), static_cast<size_t>(width));
}

}  // namespace pgolf

// The rANS encoder; the format is in rans_format.h.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "codecs/byte_codec_registry.h"
#include "codecs/rans_format.h"
#include "core/error.h"

namespace pgolf {

namespace rans {

void put_varint(std::vector<uint8_t>& out, uint32_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

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

}  // namespace rans

namespace {

using namespace rans;

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

class RansCodec final : public ByteCodec {
 public:
  explicit RansCodec(Settings settings) : block_(settings.block), width_(settings.width) {}
  std::string spec() const override {
    return "rans:block=" + std::to_string(block_) + (width_ == 1 ? "" : ",width=" + std::to_string(width_));
  }
  std::string spec_for_symbols(int width) const override {
    return width == 2 && block_ % 2 == 0 ? RansCodec({block_, 2}).spec() : ByteCodec::spec_for_symbols(width);
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

 private:
  size_t block_;
  size_t width_;
};

}  // namespace

std::unique_ptr<ByteCodec> make_rans_codec(const SpecStage& stage) { return std::make_unique<RansCodec>(settings_of(stage)); }

}  // namespace pgolf

// The rANS stream format, shared by its encoder (rans_codec.cpp) and decoder (rans_decoder.cpp).
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
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "core/spec.h"

namespace pgolf::rans {

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

// "rans[:block=N][,width=W]" checked: block bytes and symbol width; InputError otherwise.
struct Settings {
  size_t block = kDefaultBlock;
  size_t width = 1;  // bytes per symbol: 1 or 2
};
Settings settings_of(const SpecStage& stage);

// The pieces both rANS layouts (rans, vrans) share. Writing (rans_codec.cpp):
void put_varint(std::vector<uint8_t>& out, uint32_t value);
// Frequencies summing to total, each present symbol >= 1, that minimise the coded size.
std::vector<uint32_t> normalise(std::span<const uint64_t> counts, uint64_t length, uint32_t total);
// The present values, ascending, as runs of consecutive values.
void put_runs(std::vector<uint8_t>& out, std::span<const uint32_t> values);
std::vector<uint64_t> count_bytes(std::span<const uint8_t> block);

// Reading (rans_decoder.cpp):
[[noreturn]] void corrupt(const char* what);  // InputError "corrupt rans stream: ..."
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
// Reads the runs of present values (between min_runs and max_runs runs, values below value_limit,
// at most max_values of them).
std::vector<uint32_t> read_runs(Reader& in, uint32_t value_limit, uint32_t min_runs, uint32_t max_runs, uint32_t max_values);
// Reads the frequencies of `symbols` (varints summing to the alphabet's total) into a decoder's slot
// table of kTotal entries: symbol | (slot - start) << kIndexBits | freq << (kIndexBits + kScaleBits).
template <typename Index>
void read_frequencies(Reader& in, std::span<const uint32_t> symbols, std::span<typename Alphabet<Index>::Entry> slot_entries) {
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

// "vrans": rANS laid out for vector decoders (numpy decodes all lanes at once, one numpy step per L
// symbols), bytes only, no parameters:
//   varint L             lanes, a power of two from 1 to kVectorMaxLanes (the encoder takes the
//                        largest up to length / kVectorSymbolsPerLane)
//   per block            of kDefaultBlock symbols (the last may be shorter): the runs of present
//                        values as rans writes them, then for two or more values their frequencies
//                        (varints summing to 2^12)
//   L u32                each lane's initial state, little-endian
//   u16 words            to the end, little-endian, in the order the decoder reads them
// Symbol i is coded by lane i % L; L divides the block, so a step of L symbols lies in one block. A
// block of one value codes nothing (no lane moves). Decoding symbol i: slot = x & 4095, the slot's
// value, x = freq * (x >> 12) + slot - start, and if x < 2^16, x = x << 16 | the next word: lanes in
// ascending order take the words of a step in turn. States live in [2^16, 2^32); the encoder starts
// every lane at 2^16, so the decoder must end every lane there.
constexpr uint32_t kVectorMaxLanes = 1024;
// Lanes cost 4 bytes each (their states) and save numpy a step each per L symbols: one lane per 512
// symbols keeps every stream under 1,024 numpy steps but base9's int6 symbols (11 K).
constexpr size_t kVectorSymbolsPerLane = 512;
using VectorAlphabet = Alphabet<uint8_t>;  // bytes; frequencies sum to 2^12, slot tables as rans's
constexpr uint32_t kVectorStateLow = uint32_t{1} << 16;

}  // namespace pgolf::rans

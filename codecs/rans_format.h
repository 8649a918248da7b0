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
#include <type_traits>

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

}  // namespace pgolf::rans

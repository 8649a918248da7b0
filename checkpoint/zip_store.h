// Zip archives of stored (uncompressed) entries, as torch.save writes them: a strict reader that
// hands out each entry's bytes in place (no copy, so a memory-mapped checkpoint stays mapped), and
// a writer that aligns every entry's data as PyTorch does. Deflated entries, zip64, encryption,
// spanning and anything the central directory and local headers disagree on are InputErrors.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace pgolf {

struct ZipEntry {
  std::string name;
  std::span<const uint8_t> data;
};

// Every entry of the archive in central-directory order; what: the file, for messages. Checks
// every header against the archive's bounds, names unique, and each entry's CRC-32.
std::vector<ZipEntry> read_stored_zip(std::span<const uint8_t> archive, const std::string& what);

// An archive of the entries, stored, each entry's data at a multiple of `align` bytes from the
// start (padding in the local header's extra field, as PyTorch's writer pads). InputError past
// 4 GiB (no zip64).
std::vector<uint8_t> write_stored_zip(std::span<const ZipEntry> entries, size_t align = 64);

}  // namespace pgolf

#include "checkpoint/zip_store.h"

#include <algorithm>
#include <set>

#include "core/checksum.h"
#include "core/error.h"

namespace pgolf {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfDirectory = 0x06054b50;
constexpr size_t kLocalHeaderSize = 30, kCentralHeaderSize = 46, kEndSize = 22;
constexpr uint16_t kStored = 0, kUtf8Names = 0x0800, kEncrypted = 0x0001, kPaddingField = 0x4246;  // 'FB', as PyTorch
constexpr uint32_t kNeedsZip64 = 0xFFFFFFFF;

uint32_t le(std::span<const uint8_t> b, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<size_t>(i)];
  return v;
}

void put(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

std::vector<ZipEntry> read_stored_zip(std::span<const uint8_t> zip, const std::string& what) {
  auto fail = [&](const std::string& why) { return InputError(what + ": not a readable zip archive: " + why); };
  if (zip.size() < kEndSize) throw fail("too short");
  // The end record: the last signature whose comment reaches exactly to the end of the file.
  size_t end = zip.size() - kEndSize;
  const size_t lowest = zip.size() > kEndSize + 0xFFFF ? zip.size() - kEndSize - 0xFFFF : 0;
  while (!(le(zip, end, 4) == kEndOfDirectory && end + kEndSize + le(zip, end + 20, 2) == zip.size())) {
    if (end == lowest) throw fail("no end-of-central-directory record");
    --end;
  }
  const uint32_t disk = le(zip, end + 4, 2), directory_disk = le(zip, end + 6, 2);
  const uint32_t entries_here = le(zip, end + 8, 2), count = le(zip, end + 10, 2);
  const uint64_t directory_size = le(zip, end + 12, 4), directory_offset = le(zip, end + 16, 4);
  if (disk != 0 || directory_disk != 0 || entries_here != count) throw fail("spanned over several disks");
  if (count == 0xFFFF || directory_offset == kNeedsZip64 || directory_size == kNeedsZip64)
    throw fail("zip64 (over 4 GiB or 65,535 entries) is not supported");
  if (directory_offset + directory_size > end) throw fail("the central directory runs past its end record");

  std::vector<ZipEntry> entries;
  std::set<std::string> names;
  size_t at = directory_offset;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + kCentralHeaderSize > directory_offset + directory_size || le(zip, at, 4) != kCentralHeader)
      throw fail("central directory entry " + std::to_string(i) + " is malformed");
    const uint32_t flags = le(zip, at + 8, 2), method = le(zip, at + 10, 2), crc = le(zip, at + 16, 4);
    const uint64_t packed = le(zip, at + 20, 4), size = le(zip, at + 24, 4);
    const size_t name_size = le(zip, at + 28, 2), extra_size = le(zip, at + 30, 2), comment_size = le(zip, at + 32, 2);
    const uint64_t local = le(zip, at + 42, 4);
    const size_t next = at + kCentralHeaderSize + name_size + extra_size + comment_size;
    if (next > directory_offset + directory_size) throw fail("central directory entry " + std::to_string(i) + " runs past the directory");
    std::string name(reinterpret_cast<const char*>(zip.data() + at + kCentralHeaderSize), name_size);
    const std::string entry = "entry '" + name + "'";
    if (flags & kEncrypted) throw fail(entry + " is encrypted");
    if (method != kStored) throw fail(entry + " is compressed (method " + std::to_string(method) + "); torch.save stores entries");
    if (packed == kNeedsZip64 || size == kNeedsZip64 || local == kNeedsZip64) throw fail(entry + " needs zip64");
    if (packed != size) throw fail(entry + " is stored but its sizes differ");
    if (!names.insert(name).second) throw fail(entry + " appears twice");
    // The local header: same name; its extra field (PyTorch's alignment padding) is skipped.
    if (local + kLocalHeaderSize > directory_offset || le(zip, local, 4) != kLocalHeader)
      throw fail(entry + ": no local header at offset " + std::to_string(local));
    const size_t local_name = le(zip, local + 26, 2), local_extra = le(zip, local + 28, 2);
    const uint64_t data = local + kLocalHeaderSize + local_name + local_extra;
    if (local_name != name_size || data > directory_offset ||
        !std::equal(name.begin(), name.end(), zip.begin() + static_cast<ptrdiff_t>(local + kLocalHeaderSize)))
      throw fail(entry + ": its local header names another entry");
    if (le(zip, local + 8, 2) != method) throw fail(entry + ": its local header disagrees on the method");
    if (size > directory_offset - data) throw fail(entry + " runs past the start of the central directory");
    ZipEntry e{std::move(name), zip.subspan(data, size)};
    if (crc32_of(e.data) != crc) throw fail(e.name + ": CRC-32 mismatch (the archive is corrupt)");
    entries.push_back(std::move(e));
    at = next;
  }
  return entries;
}

std::vector<uint8_t> write_stored_zip(std::span<const ZipEntry> entries, size_t align) {
  require(align >= 1 && align <= 0x8000, "zip: alignment out of range");
  std::vector<uint8_t> out, directory;
  for (const ZipEntry& e : entries) {
    require(e.name.size() <= 0xFFFF, "zip: entry name too long");
    const uint64_t offset = out.size();
    // Padding so that the data starts at a multiple of align: an extra field of 4 + n bytes.
    const size_t header_end = offset + kLocalHeaderSize + e.name.size();
    size_t pad = (align - (header_end + 4) % align) % align;
    const uint32_t crc = crc32_of(e.data);
    require(offset + kLocalHeaderSize + e.name.size() + 4 + pad + e.data.size() < kNeedsZip64,
            "zip: the archive would pass 4 GiB (zip64 is not written)");
    auto header = [&](std::vector<uint8_t>& to, bool central) {
      put(to, central ? kCentralHeader : kLocalHeader, 4);
      if (central) put(to, 20, 2);  // version made by
      put(to, 20, 2);               // version needed
      put(to, kUtf8Names, 2);
      put(to, kStored, 2);
      put(to, 0, 4);  // time and date: none, so the same tensors give the same bytes
      put(to, crc, 4);
      put(to, static_cast<uint32_t>(e.data.size()), 4);
      put(to, static_cast<uint32_t>(e.data.size()), 4);
      put(to, static_cast<uint32_t>(e.name.size()), 2);
      put(to, central ? 0 : static_cast<uint32_t>(4 + pad), 2);
      if (central) {
        put(to, 0, 2);  // comment
        put(to, 0, 2);  // disk
        put(to, 0, 2);  // internal attributes
        put(to, 0, 4);  // external attributes
        put(to, static_cast<uint32_t>(offset), 4);
      }
      to.insert(to.end(), e.name.begin(), e.name.end());
    };
    header(out, false);
    put(out, kPaddingField, 2);
    put(out, static_cast<uint32_t>(pad), 2);
    out.insert(out.end(), pad, 0);
    out.insert(out.end(), e.data.begin(), e.data.end());
    header(directory, true);
  }
  require(entries.size() < 0xFFFF && out.size() + directory.size() < kNeedsZip64,
          "zip: the archive would pass 4 GiB or 65,535 entries (zip64 is not written)");
  const uint64_t directory_offset = out.size();
  out.insert(out.end(), directory.begin(), directory.end());
  put(out, kEndOfDirectory, 4);
  put(out, 0, 4);  // disks
  put(out, static_cast<uint32_t>(entries.size()), 2);
  put(out, static_cast<uint32_t>(entries.size()), 2);
  put(out, static_cast<uint32_t>(directory.size()), 4);
  put(out, static_cast<uint32_t>(directory_offset), 4);
  put(out, 0, 2);  // comment
  return out;
}

}  // namespace pgolf

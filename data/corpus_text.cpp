#include "data/corpus_text.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "core/error.h"

namespace pgolf {

namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

void append_code_point(std::string& out, uint32_t c) {
  if (c == 0 || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
    out += kReplacementCharacter;
  } else if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | c >> 6);
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | c >> 12);
    out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | c >> 18);
    out += static_cast<char>(0x80 | (c >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (c >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Bytes of whitespace (as Python's str.rstrip sees it) at the end of a valid UTF-8 line.
size_t trailing_space_bytes(std::string_view line) {
  constexpr std::array<std::string_view, 18> kMultibyteSpaces = {
      "\xC2\x85",     "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x81", "\xE2\x80\x82",
      "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86", "\xE2\x80\x87", "\xE2\x80\x88",
      "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE3\x80\x80"};
  std::string_view rest = line;
  for (;;) {
    char last = rest.empty() ? 'x' : rest.back();
    if (last == ' ' || (last >= '\t' && last <= '\r') || (last >= 0x1C && last <= 0x1F)) {
      rest.remove_suffix(1);
      continue;
    }
    auto space = std::find_if(kMultibyteSpaces.begin(), kMultibyteSpaces.end(),
                              [&](std::string_view s) { return rest.ends_with(s); });
    if (space == kMultibyteSpaces.end()) return line.size() - rest.size();
    rest.remove_suffix(space->size());
  }
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
  return out;
}

// Position of needle (lowercase) in haystack from `from`, ignoring ASCII case; npos if absent.
size_t find_ignoring_case(std::string_view haystack, std::string_view needle, size_t from) {
  auto it = std::search(haystack.begin() + static_cast<std::ptrdiff_t>(std::min(from, haystack.size())), haystack.end(),
                        needle.begin(), needle.end(), [](char a, char b) { return ascii_lower(a) == b; });
  return it == haystack.end() ? std::string_view::npos : static_cast<size_t>(it - haystack.begin());
}

// Gathers pieces of text into chunks; a chunk closes once its pieces hold min_chars code points.
class ChunkGatherer {
 public:
  ChunkGatherer(std::string_view separator, size_t min_chars) : separator_(separator), min_chars_(min_chars) {}

  void add(std::string_view piece) {
    if (open_) chunk_ += separator_;
    chunk_ += piece;
    open_ = true;
    chars_ += utf8_chars(piece);
    if (chars_ >= min_chars_) close();
  }

  std::vector<std::string> finish() {
    if (open_) close();
    return std::move(chunks_);
  }

 private:
  void close() {
    chunks_.push_back(std::move(chunk_));
    chunk_.clear();
    chars_ = 0;
    open_ = false;
  }

  std::string_view separator_;
  size_t min_chars_;
  std::vector<std::string> chunks_;
  std::string chunk_;
  size_t chars_ = 0;
  bool open_ = false;
};

bool is_block_tag(std::string_view name) {
  constexpr std::array<std::string_view, 20> kBlockTags = {"br",    "p",  "div", "h1", "h2",         "h3", "h4",
                                                           "h5",    "h6", "li",  "tr", "dt",         "dd", "pre",
                                                           "table", "ul", "ol",  "dl", "blockquote", "hr"};
  return std::find(kBlockTags.begin(), kBlockTags.end(), name) != kBlockTags.end();
}

// The named references the documentation packages use, and the common typographic ones.
bool append_named_reference(std::string& out, std::string_view name) {
  struct Named {
    std::string_view name;
    uint32_t code_point;
  };
  constexpr std::array<Named, 22> kNamed = {{
      {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},    {"nbsp", 0xA0},
      {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"ndash", 0x2013}, {"mdash", 0x2014}, {"hellip", 0x2026},
      {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"laquo", 0xAB},   {"raquo", 0xBB},
      {"times", 0xD7},   {"minus", 0x2212}, {"rarr", 0x2192},  {"larr", 0x2190},
  }};
  for (const auto& n : kNamed)
    if (n.name == name) {
      append_code_point(out, n.code_point);
      return true;
    }
  return false;
}

// Decodes the character reference at html[i] == '&' into out; returns the bytes consumed
// (0 when it is not a reference we know, and the '&' stays as it is).
size_t decode_reference(std::string_view html, size_t i, std::string& out) {
  size_t semicolon = html.find(';', i);
  if (semicolon == std::string_view::npos || semicolon - i > 12) return 0;
  std::string_view body = html.substr(i + 1, semicolon - i - 1);
  if (body.size() >= 2 && body[0] == '#') {
    bool hex = body[1] == 'x' || body[1] == 'X';
    std::string_view digits = body.substr(hex ? 2 : 1);
    if (digits.empty()) return 0;
    uint32_t code_point = 0;
    for (char c : digits) {
      int value = c >= '0' && c <= '9'          ? c - '0'
                  : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                : -1;
      if (value < 0) return 0;
      code_point = std::min<uint32_t>(code_point * (hex ? 16 : 10) + static_cast<uint32_t>(value), 0x110000);
    }
    append_code_point(out, code_point);
    return semicolon - i + 1;
  }
  return append_named_reference(out, body) ? semicolon - i + 1 : 0;
}

// Decompresses a gzip file (dictzip's .dz is gzip with an index in its header).
std::string gunzip(std::string_view compressed, const std::string& path) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2 failed");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out;
  char buffer[1 << 16];
  int code = Z_OK;
  while (code == Z_OK) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    code = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
  }
  inflateEnd(&stream);
  require(code == Z_STREAM_END, path + ": not a complete gzip file");
  return out;
}

}  // namespace

TextRule rule_for_file(std::string_view file_name) {
  for (std::string_view compressed : {".gz", ".dz"})
    if (file_name.ends_with(compressed)) file_name.remove_suffix(compressed.size());
  if (file_name.ends_with(".html")) return TextRule::Html;
  if (file_name.ends_with(".dict")) return TextRule::Dictionary;
  if (file_name.find('.') == std::string_view::npos) return TextRule::Cookies;
  return TextRule::Plain;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), path + ": cannot read");
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  require(!in.bad(), path + ": cannot read");
  return path.ends_with(".gz") || path.ends_with(".dz") ? gunzip(bytes, path) : bytes;
}

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    auto lead = static_cast<uint8_t>(bytes[i]);
    if (lead < 0x80) {
      out += bytes[i++];
      continue;
    }
    // The sequence's length and the range allowed for its second byte, which rules out
    // overlong forms, surrogates and code points past U+10FFFF.
    size_t length = 0;
    uint8_t second_low = 0x80, second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_low = 0xA0;
      if (lead == 0xED) second_high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_low = 0x90;
      if (lead == 0xF4) second_high = 0x8F;
    }
    size_t valid = 1;  // bytes of the sequence that are valid so far
    while (valid < length && i + valid < bytes.size()) {
      auto b = static_cast<uint8_t>(bytes[i + valid]);
      if (b < (valid == 1 ? second_low : 0x80) || b > (valid == 1 ? second_high : 0xBF)) break;
      ++valid;
    }
    if (valid == length)
      out.append(bytes.substr(i, length));
    else
      out += kReplacementCharacter;
    i += valid;
  }
  return out;
}

size_t utf8_chars(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string fold_blank_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool blank_pending = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    line.remove_suffix(trailing_space_bytes(line));
    if (line.empty()) {
      blank_pending = !out.empty();
    } else {
      if (!out.empty()) out += blank_pending ? "\n\n" : "\n";
      out += line;
      blank_pending = false;
    }
    start = end + 1;
  }
  return out;
}

std::string html_to_text(std::string_view html) {
  std::string out;
  out.reserve(html.size());
  size_t i = 0;
  while (i < html.size()) {
    char c = html[i];
    if (c == '&') {
      size_t used = decode_reference(html, i, out);
      if (used == 0) out += c;
      i += used ? used : 1;
      continue;
    }
    if (c != '<') {
      out += c;
      ++i;
      continue;
    }
    if (html.substr(i, 4) == "<!--") {
      size_t close = html.find("-->", i + 4);
      if (close != std::string_view::npos) {
        i = close + 3;
        continue;
      }
    }
    size_t close = html.find('>', i);
    if (close == std::string_view::npos) {  // a lone '<' is text
      out += c;
      ++i;
      continue;
    }
    std::string_view tag = html.substr(i + 1, close - i - 1);
    bool closing = !tag.empty() && tag[0] == '/';
    size_t name_start = closing ? 1 : 0, name_end = name_start;
    while (name_end < tag.size() && std::isalnum(static_cast<unsigned char>(tag[name_end]))) ++name_end;
    std::string name = lowercase(tag.substr(name_start, name_end - name_start));
    i = close + 1;
    if (!closing && (name == "script" || name == "style")) {
      size_t end_tag = find_ignoring_case(html, "</" + name + ">", i);
      i = end_tag == std::string_view::npos ? html.size() : end_tag + name.size() + 3;
    } else if (!closing && is_block_tag(name)) {
      out += '\n';
    }
  }
  return out;
}

std::vector<std::string> chunk_at_blank_lines(std::string_view folded_text, size_t min_chars) {
  ChunkGatherer chunks("\n\n", min_chars);
  for (size_t start = 0; start <= folded_text.size();) {
    size_t end = std::min(folded_text.find("\n\n", start), folded_text.size());
    chunks.add(folded_text.substr(start, end - start));
    start = end + 2;
  }
  return chunks.finish();
}

std::vector<std::string> cookie_chunks(std::string_view cookie_file, size_t min_chars) {
  // Cookies are the text between lines that are exactly "%"; joined with "\n", each "%" line
  // becomes a blank line.
  ChunkGatherer chunks("\n", min_chars);
  for (size_t start = 0; start < cookie_file.size();) {
    size_t line = start;
    while (line < cookie_file.size() && cookie_file.substr(line, 2) != "%\n")
      line = std::min(cookie_file.find('\n', line), cookie_file.size() - 1) + 1;
    chunks.add(cookie_file.substr(start, line - start));
    start = line + 2;
  }
  return chunks.finish();
}

std::vector<std::string> documents_from_file(TextRule rule, std::string_view file_bytes) {
  std::string text = valid_utf8(file_bytes);
  std::vector<std::string> documents;
  if (rule == TextRule::Cookies) {
    for (const auto& chunk : cookie_chunks(text)) documents.push_back(fold_blank_lines(chunk));
  } else {
    std::string folded = fold_blank_lines(rule == TextRule::Html ? html_to_text(text) : text);
    if (rule == TextRule::Dictionary || utf8_chars(folded) > kMaxDocumentChars)
      documents = chunk_at_blank_lines(folded);
    else
      documents.push_back(std::move(folded));
  }
  std::erase_if(documents, [](const std::string& d) { return utf8_chars(d) < kMinDocumentChars; });
  return documents;
}

std::vector<std::string> extract_file(const std::string& path) {
  return documents_from_file(rule_for_file(std::filesystem::path(path).filename().string()), read_text_file(path));
}

}  // namespace pgolf

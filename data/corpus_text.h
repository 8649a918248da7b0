// How the corpus builder turns one file of a Debian package into documents
// (the rules of shared/data/sp1024/README.md). Lengths are counted in Unicode code points,
// as the Python that built the shared corpus counted them; byte counts are only reported.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

inline constexpr size_t kChunkChars = 4000;         // a chunk closes once its paragraphs reach this
inline constexpr size_t kMaxDocumentChars = 60000;  // longer files are cut into chunks
inline constexpr size_t kMinDocumentChars = 200;    // shorter documents are dropped

enum class TextRule {
  Plain,       // text as it is (rst, txt, pod)
  Html,        // tags stripped, entities decoded
  Dictionary,  // always cut into chunks at blank lines
  Cookies,     // fortune cookie file: cookies (between "%" lines) gathered into chunks
};

// The rule by file name, after any .gz or .dz: .html is Html, .dict is Dictionary (dict-gcide),
// a name without a dot is Cookies (fortune files), anything else is Plain.
TextRule rule_for_file(std::string_view file_name);

// A file's bytes, decompressed when its name ends in .gz or .dz (dictzip is gzip).
// Throws InputError naming the file when it cannot be read or decompressed.
std::string read_text_file(const std::string& path);

// Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart (as Python's errors="replace").
std::string valid_utf8(std::string_view bytes);
size_t utf8_chars(std::string_view text);  // code points of valid UTF-8

// Trailing whitespace of every line removed, runs of blank lines folded into one, no blank
// lines (and no newline) at the start or end.
std::string fold_blank_lines(std::string_view text);

// Tags dropped (an opening block tag such as <p>, <div>, <li>, <pre>, <br> becomes a newline),
// <script>/<style> elements and comments dropped, character references decoded.
std::string html_to_text(std::string_view html);

// Paragraphs (split at blank lines) gathered into chunks: a chunk closes as soon as its
// paragraphs hold min_chars code points (separators not counted); the rest is the last chunk.
std::vector<std::string> chunk_at_blank_lines(std::string_view folded_text, size_t min_chars = kChunkChars);

// A fortune cookie file cut the same way, at its "%" lines; each "%" line becomes a blank line.
std::vector<std::string> cookie_chunks(std::string_view cookie_file, size_t min_chars = kChunkChars);

// The documents of one (decompressed) file under a rule: text extracted, blank lines folded,
// cut into chunks where the rule or the length says so, short documents dropped.
std::vector<std::string> documents_from_file(TextRule rule, std::string_view file_bytes);

// documents_from_file with the rule and the bytes of the file at path.
std::vector<std::string> extract_file(const std::string& path);

}  // namespace pgolf

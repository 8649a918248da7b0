// The corpus builder: its text rules on real package files (samples/corpus/raw), the
// deterministic order, the tokenizer, the shards it writes, and import's checks.
#include "data/corpus.h"

#include <gtest/gtest.h>
#include <lzma.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/corpus_import.h"
#include "data/corpus_text.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "support/test_support.h"

namespace pgolf {
namespace {

namespace fs = std::filesystem;

std::string raw_sample(const std::string& name) { return test::sample_path("corpus/raw/" + name); }

std::string file_text(const std::string& path) {
  auto bytes = test::read_bytes(path);
  return {bytes.begin(), bytes.end()};
}

// samples/corpus/documents.jsonl: what `pgolf data extract raw/*/*` made of the raw files.
std::vector<CorpusDocument> sample_documents() {
  std::vector<CorpusDocument> documents;
  std::ifstream in(test::sample_path("corpus/documents.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    documents.push_back({j["file"].get<std::string>(), j["text"].get<std::string>()});
  }
  return documents;
}

// The message of the InputError that fn throws ("" when it throws none).
template <typename Fn>
std::string input_error(Fn fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(CorpusText, FoldsBlankLinesAndTrailingWhitespace) {
  EXPECT_EQ(fold_blank_lines("  \n\nfirst  \n\n\n\t\nsecond\r\nthird\xC2\xA0\n\n\n"), "first\n\nsecond\nthird");
  EXPECT_EQ(fold_blank_lines("a\n \n \nb"), "a\n\nb");
  EXPECT_EQ(fold_blank_lines("  indented stays\n"), "  indented stays");
  EXPECT_EQ(fold_blank_lines("\n\n\n"), "");
}

TEST(CorpusText, StripsHtmlTagsAndDecodesEntities) {
  std::string html =
      "<html><head><title>T</title><style>p { color: red }</style></head><body>"
      "<p>a &lt;b&gt; &amp; &quot;c&quot; &copy; &#233; &#x263A; &bogus; AT&T</p><!-- <p>gone</p> -->"
      "<script type=\"x\">if (a < b) {}</script><DIV class=\"x\">d</DIV><br/>e<span>f</span></body></html>";
  EXPECT_EQ(html_to_text(html), "T\na <b> & \"c\" \xC2\xA9 \xC3\xA9 \xE2\x98\xBA &bogus; AT&T\nd\nef");

  // A real page: no markup or references left, the decoded text is there.
  auto documents = extract_file(raw_sample("postgresql-doc-15/trigger-example.html"));
  ASSERT_EQ(documents.size(), 1u);
  for (const char* markup : {"<div", "<a ", "<pre", "</", "&lt;", "&gt;", "&quot;", "&amp;", "&copy;"})
    EXPECT_EQ(documents[0].find(markup), std::string::npos) << markup;
  EXPECT_NE(documents[0].find("CREATE FUNCTION trigf() RETURNS trigger"), std::string::npos);
  EXPECT_NE(documents[0].find("#include \"executor/spi.h\""), std::string::npos);  // from &quot;
}

TEST(CorpusText, ValidUtf8ReplacesInvalidBytesAsPythonDoes) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(valid_utf8("a\xFF"
                       "b"),
            "a" + fffd + "b");
  EXPECT_EQ(valid_utf8("\xE2\x82x"), fffd + "x");             // truncated sequence: one
  EXPECT_EQ(valid_utf8("\xC0\xAF"), fffd + fffd);             // overlong
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);  // surrogate
  EXPECT_EQ(valid_utf8("\xF0\x9F\x98\x80 \xC3\xA9"), "\xF0\x9F\x98\x80 \xC3\xA9");
  EXPECT_EQ(utf8_chars("\xF0\x9F\x98\x80 \xC3\xA9"), 3u);
}

TEST(CorpusText, DropsDocumentsUnder200CodePoints) {
  EXPECT_TRUE(documents_from_file(TextRule::Plain, std::string(199, 'x') + "\n\n\n").empty());
  EXPECT_EQ(documents_from_file(TextRule::Plain, std::string(200, 'x')).size(), 1u);
  std::string e_acute = "\xC3\xA9";
  std::string short_text, long_text;
  for (int i = 0; i < 199; ++i) short_text += e_acute;  // 398 bytes, 199 code points
  long_text = short_text + e_acute;
  EXPECT_TRUE(documents_from_file(TextRule::Plain, short_text).empty());
  EXPECT_EQ(documents_from_file(TextRule::Plain, long_text).size(), 1u);
}

TEST(CorpusText, ChunksAtBlankLinesOnceTheyHold4000CodePoints) {
  std::vector<std::string> paragraphs;
  for (int i = 0; i < 7; ++i) paragraphs.push_back(std::string(1500, static_cast<char>('a' + i)));
  std::string text;
  for (const auto& p : paragraphs) text += (text.empty() ? "" : "\n\n") + p;

  auto chunks = chunk_at_blank_lines(text);
  ASSERT_EQ(chunks.size(), 3u);  // 3 + 3 paragraphs reach 4,500 >= 4,000; the last one is the rest
  EXPECT_EQ(chunks[0], paragraphs[0] + "\n\n" + paragraphs[1] + "\n\n" + paragraphs[2]);
  EXPECT_EQ(chunks[2], paragraphs[6]);

  // Files up to 60,000 code points stay whole; longer ones are cut; a dictionary always is.
  std::string just_fits, too_long;
  while (utf8_chars(just_fits) + 1502 <= kMaxDocumentChars)
    just_fits += (just_fits.empty() ? "" : "\n\n") + paragraphs[0];
  too_long = just_fits + "\n\n" + paragraphs[1];
  ASSERT_LE(utf8_chars(just_fits), kMaxDocumentChars);
  EXPECT_EQ(documents_from_file(TextRule::Plain, just_fits).size(), 1u);
  EXPECT_GT(documents_from_file(TextRule::Plain, too_long).size(), 1u);
  EXPECT_EQ(documents_from_file(TextRule::Dictionary, text).size(), 3u);

  // A real long file: every chunk but the last reaches 4,000, and together they are the file.
  std::string argparse = fold_blank_lines(file_text(raw_sample("python3.11-doc/argparse.rst.txt")));
  auto documents = extract_file(raw_sample("python3.11-doc/argparse.rst.txt"));
  ASSERT_GT(documents.size(), 10u);
  std::string joined;
  for (size_t i = 0; i < documents.size(); ++i) {
    if (i + 1 < documents.size()) {
      EXPECT_GE(utf8_chars(documents[i]), kChunkChars);
    }
    joined += (i ? "\n\n" : "") + documents[i];
  }
  EXPECT_EQ(joined, argparse);
}

TEST(CorpusText, CutsCookieFilesAtPercentLines) {
  auto chunks = cookie_chunks("one\n%\ntwo\n%\nthree\n%\nfour\n", 8);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "one\n\ntwo\n");  // "%" lines become blank lines; 8 code points close it
  EXPECT_EQ(chunks[1], "three\n\nfour\n");
  EXPECT_EQ(cookie_chunks("100% sure\n%\n", 100)[0], "100% sure\n");  // only a whole "%" line cuts

  auto documents = extract_file(raw_sample("fortunes/linuxcookie"));
  ASSERT_EQ(documents.size(), 5u);
  for (const auto& d : documents) {
    EXPECT_EQ(d.find("\n%\n"), std::string::npos);
    EXPECT_NE(d.front(), '\n');
    EXPECT_NE(d.back(), '\n');
  }
}

TEST(CorpusText, PodAndRstPassThroughFolded) {
  auto pod = extract_file(raw_sample("perl-doc/perlreftut.pod"));
  ASSERT_EQ(pod.size(), 1u);
  EXPECT_EQ(pod[0], fold_blank_lines(file_text(raw_sample("perl-doc/perlreftut.pod"))));
  EXPECT_TRUE(pod[0].starts_with("=head1 NAME"));

  auto rst = extract_file(raw_sample("linux-doc-6.1/pciebus-howto.rst.gz"));  // gzip'd in the package
  ASSERT_EQ(rst.size(), 1u);
  EXPECT_EQ(rst[0], fold_blank_lines(read_text_file(raw_sample("linux-doc-6.1/pciebus-howto.rst.gz"))));
  EXPECT_NE(rst[0].find("PCI Express Port Bus Driver"), std::string::npos);
}

TEST(CorpusText, RuleFollowsTheFileName) {
  EXPECT_EQ(rule_for_file("sql-select.html"), TextRule::Html);
  EXPECT_EQ(rule_for_file("gcide.dict.dz"), TextRule::Dictionary);
  EXPECT_EQ(rule_for_file("men-women"), TextRule::Cookies);
  EXPECT_EQ(rule_for_file("pci.rst.gz"), TextRule::Plain);
  EXPECT_EQ(rule_for_file("perlreftut.pod"), TextRule::Plain);
}

TEST(CorpusText, SampleDocumentsAreWhatTheRulesMake) {
  // samples/corpus/documents.jsonl was made by these rules; a rule change shows here.
  auto expected = sample_documents();
  std::vector<CorpusDocument> extracted;
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(test::sample_path("corpus/raw")))
    if (entry.is_regular_file()) files.push_back(fs::relative(entry.path(), test::sample_path("corpus")).string());
  std::sort(files.begin(), files.end());
  for (const auto& file : files)
    for (auto& text : extract_file(test::sample_path("corpus/" + file))) extracted.push_back({file, std::move(text)});
  ASSERT_EQ(extracted.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(extracted[i].source, expected[i].source);
    EXPECT_EQ(extracted[i].text, expected[i].text) << expected[i].source;
  }
}

TEST(CorpusOrder, ShufflesAsPythonsRandomShuffle) {
  // random.Random(seed).shuffle(list(range(12))) in Python 3.11.
  EXPECT_EQ(python_shuffle_order(12, 1337), (std::vector<size_t>{6, 0, 1, 4, 10, 7, 3, 11, 2, 5, 8, 9}));
  EXPECT_EQ(python_shuffle_order(12, 0), (std::vector<size_t>{1, 9, 8, 5, 10, 2, 3, 7, 4, 0, 11, 6}));
  EXPECT_EQ(python_shuffle_order(12, (uint64_t{1} << 40) + 5),
            (std::vector<size_t>{3, 5, 2, 9, 6, 7, 1, 10, 0, 4, 11, 8}));
  auto order = python_shuffle_order(24207, 1337);  // the corpus size
  EXPECT_EQ(std::vector<size_t>(order.begin(), order.begin() + 3), (std::vector<size_t>{8926, 5410, 9099}));
}

TEST(CorpusOrder, OrderDependsOnlyOnTheDocumentsAndSeed) {
  auto documents = sample_documents();
  auto reversed = std::vector<CorpusDocument>(documents.rbegin(), documents.rend());
  order_documents(documents, 1337);
  order_documents(reversed, 1337);
  ASSERT_EQ(documents.size(), reversed.size());
  for (size_t i = 0; i < documents.size(); ++i) EXPECT_EQ(documents[i].text, reversed[i].text);
  auto other_seed = sample_documents();
  order_documents(other_seed, 1338);
  EXPECT_NE(other_seed[0].text + other_seed[1].text, documents[0].text + documents[1].text);
}

TEST(CorpusTokenizer, TrainsDeterministicallyWithParameterGolfSettings) {
  auto documents = sample_documents();
  std::string model = train_tokenizer(documents, 1024);
  EXPECT_EQ(train_tokenizer(documents, 1024), model);

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(model).ok());
  EXPECT_EQ(sp.GetPieceSize(), 1024);
  EXPECT_EQ(sp.pad_id(), 0);
  EXPECT_EQ(sp.bos_id(), 1);
  EXPECT_EQ(sp.eos_id(), 2);
  EXPECT_EQ(sp.unk_id(), 3);
  EXPECT_TRUE(sp.IsByte(sp.PieceToId("<0x00>")));  // byte fallback: all 256 bytes have pieces
  EXPECT_TRUE(sp.IsByte(sp.PieceToId("<0xFF>")));
  // Digits are split, there is no dummy prefix, and a character the sample lacks
  // survives as bytes rather than <unk>.
  auto pieces = sp.EncodeAsPieces("2024 \xE2\x98\xBA");
  EXPECT_EQ(pieces[0], "2");
  EXPECT_EQ(pieces[1], "0");
  auto ids = sp.EncodeAsIds("2024 \xE2\x98\xBA");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), sp.unk_id()), 0);
  EXPECT_EQ(sp.DecodeIds(ids), "2024 \xE2\x98\xBA");
  EXPECT_THROW(train_tokenizer(documents, 100), InputError);
}

TEST(CorpusWrite, WritesShardsTokenizerAndManifestDeterministically) {
  auto documents = sample_documents();
  order_documents(documents, 1337);
  CorpusSettings settings;
  settings.val_documents = 5;
  settings.shard_tokens = 20000;
  test::TempDir dir;
  auto manifest = write_corpus(documents, {}, settings, dir.file("a"), false);

  Tokenizer tokenizer = Tokenizer::load(dir.file("a/corpus_1024_bpe.model"));
  EXPECT_EQ(manifest["tokenizer"]["vocab_size"], 1024);
  size_t documents_seen = 0, doc = 0;
  for (std::string split : {"val", "train"}) {
    auto shards = find_shards(dir.file("a"), split);
    ASSERT_EQ(shards.size(), manifest["splits"][split]["shards"].size());
    std::vector<uint16_t> tokens;
    for (const auto& path : shards) {
      auto shard = TokenShard::open(path);
      tokens.insert(tokens.end(), shard.tokens().begin(), shard.tokens().end());
    }
    EXPECT_EQ(tokens.size(), manifest["splits"][split]["tokens"].get<size_t>());
    size_t bos = std::count(tokens.begin(), tokens.end(), uint16_t{1});
    EXPECT_EQ(bos, manifest["splits"][split]["documents"].get<size_t>());
    documents_seen += bos;
    // Each document is BOS then its encoding, in order, with no EOS.
    size_t at = 0;
    for (size_t n = 0; n < bos; ++n, ++doc) {
      auto ids = tokenizer.encode(documents[doc].text);
      ASSERT_EQ(tokens[at], 1);
      ASSERT_TRUE(std::equal(ids.begin(), ids.end(), tokens.begin() + at + 1));
      at += ids.size() + 1;
    }
    EXPECT_EQ(at, tokens.size());
  }
  EXPECT_EQ(documents_seen, documents.size());
  EXPECT_EQ(manifest["splits"]["val"]["documents"], 5);
  EXPECT_GT(manifest["splits"]["train"]["shards"].size(), 1u);

  // The same documents make the same files; an existing corpus is refused without overwrite.
  write_corpus(documents, {}, settings, dir.file("b"), false);
  for (const auto& entry : fs::directory_iterator(dir.file("a")))
    EXPECT_EQ(test::read_bytes(entry.path().string()),
              test::read_bytes(dir.file("b/" + entry.path().filename().string())))
        << entry.path();
  EXPECT_NE(input_error([&] { write_corpus(documents, {}, settings, dir.file("a"), false); }).find("--force"),
            std::string::npos);
}

// A folder with a tokenizer (vocab 1024) and valid val and train shards.
void write_import_folder(const std::string& dir) {
  fs::create_directories(dir);
  fs::copy_file(test::sample_path("sp1024/corpus_1024_bpe.model"), dir + "/corpus_1024_bpe.model");
  std::vector<uint16_t> tokens = {1, 5, 900, 1023, 1, 7};
  write_shard(dir + "/corpus_val_000000.bin", tokens, false);
  write_shard(dir + "/corpus_train_000000.bin", tokens, false);
}

// Writes an .xz copy of path as path + ".xz" and removes path.
void xz_compress(const std::string& path) {
  auto bytes = test::read_bytes(path);
  std::vector<uint8_t> out(bytes.size() + 1024);
  size_t out_size = 0;
  ASSERT_EQ(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, bytes.data(), bytes.size(), out.data(), &out_size,
                                    out.size()),
            LZMA_OK);
  out.resize(out_size);
  test::write_bytes(path + ".xz", out);
  fs::remove(path);
}

TEST(CorpusImport, CopiesAndDecompressesShards) {
  test::TempDir dir;
  write_import_folder(dir.file("in"));
  std::vector<uint16_t> more(50000, 42);
  write_shard(dir.file("in/corpus_train_000001.bin"), more, false);
  auto original = test::read_bytes(dir.file("in/corpus_train_000001.bin"));
  xz_compress(dir.file("in/corpus_train_000001.bin"));

  auto manifest = import_corpus(dir.file("in"), dir.file("out"), false);
  EXPECT_EQ(test::read_bytes(dir.file("out/corpus_train_000001.bin")), original);
  EXPECT_EQ(test::read_bytes(dir.file("out/corpus_val_000000.bin")),
            test::read_bytes(dir.file("in/corpus_val_000000.bin")));
  EXPECT_TRUE(fs::exists(dir.file("out/corpus_1024_bpe.model")));
  EXPECT_TRUE(fs::exists(dir.file("out/manifest.json")));
  EXPECT_EQ(manifest["splits"]["train"]["tokens"], 6 + 50000);
  EXPECT_EQ(manifest["splits"]["val"]["tokens"], 6);
  EXPECT_EQ(manifest["tokenizer"]["vocab_size"], 1024);
}

struct BadShard {
  const char* name;
  void (*spoil)(const std::string& path);  // spoils a valid shard
  const char* message;                     // part of the expected error
  bool compress;                           // import it as .xz
};
void PrintTo(const BadShard& bad, std::ostream* out) { *out << bad.name; }

void wrong_magic(const std::string& path) {
  auto bytes = test::read_bytes(path);
  bytes[0] ^= 0xFF;
  test::write_bytes(path, bytes);
}
void truncated(const std::string& path) {
  auto bytes = test::read_bytes(path);
  bytes.pop_back();
  test::write_bytes(path, bytes);
}
void token_past_vocab(const std::string& path) {
  std::vector<uint16_t> tokens = {1, 5, 1024};
  write_shard(path, tokens, true);
}
void truncated_xz(const std::string& path) {
  xz_compress(path);
  truncated(path + ".xz");
}

class CorpusImportRejects : public ::testing::TestWithParam<BadShard> {};

TEST_P(CorpusImportRejects, NamingTheFileAndLeavingNoManifest) {
  const BadShard& bad = GetParam();
  test::TempDir dir;
  write_import_folder(dir.file("in"));
  std::string shard = dir.file("in/corpus_train_000000.bin");
  bad.spoil(shard);
  if (bad.compress && fs::exists(shard)) xz_compress(shard);
  std::string shown = fs::exists(shard) ? shard : shard + ".xz";

  std::string message = input_error([&] { import_corpus(dir.file("in"), dir.file("out"), false); });
  EXPECT_NE(message.find(shown), std::string::npos) << message;
  EXPECT_NE(message.find(bad.message), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir.file("out/manifest.json")));
  EXPECT_FALSE(fs::exists(dir.file("out/corpus_train_000000.bin")));  // a bad shard is not left behind
}

INSTANTIATE_TEST_SUITE_P(
    CorpusBadShards, CorpusImportRejects,
    ::testing::Values(BadShard{"wrong_magic", wrong_magic, "magic", false},
                      BadShard{"truncated", truncated, "truncated", false},
                      BadShard{"token_past_vocab", token_past_vocab, "token 1024 at position 2", false},
                      BadShard{"wrong_magic_xz", wrong_magic, "magic", true},
                      BadShard{"token_past_vocab_xz", token_past_vocab, "not below the vocab size 1024", true},
                      BadShard{"truncated_xz", truncated_xz, "cannot decompress", false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CorpusImport, NeedsOneTokenizerAndBothSplits) {
  test::TempDir dir;
  write_import_folder(dir.file("in"));
  fs::remove(dir.file("in/corpus_val_000000.bin"));
  EXPECT_NE(input_error([&] { import_corpus(dir.file("in"), dir.file("out"), false); }).find("no *_val_*"),
            std::string::npos);
  write_import_folder(dir.file("in2"));
  fs::remove(dir.file("in2/corpus_1024_bpe.model"));
  EXPECT_NE(input_error([&] { import_corpus(dir.file("in2"), dir.file("out"), false); }).find("no *.model"),
            std::string::npos);
}

}  // namespace
}  // namespace pgolf

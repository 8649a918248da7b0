// A SentencePiece tokenizer, and Parameter Golf's byte counting for val_bpb
// (build_sentencepiece_luts in the reference train_gpt.py).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace pgolf {

// How many text bytes each target token stands for. Control, unknown and unused pieces
// count 0 and are boundaries; byte-fallback pieces count 1; any other piece counts the
// UTF-8 bytes of its text without a leading "▁", plus 1 for that "▁" unless the previous
// token is a boundary. Ids past the table are boundaries that count 0.
struct ByteTable {
  std::vector<int16_t> base_bytes;
  std::vector<uint8_t> has_leading_space;
  std::vector<uint8_t> is_boundary;

  int64_t size() const { return static_cast<int64_t>(base_bytes.size()); }
  int bytes(int64_t previous, int64_t target) const {
    if (target < 0 || target >= size()) return 0;
    bool previous_is_boundary = previous < 0 || previous >= size() || is_boundary[previous];
    return base_bytes[target] + (has_leading_space[target] && !previous_is_boundary ? 1 : 0);
  }
};

class Tokenizer {
 public:
  // Throws InputError naming the file when it is not a SentencePiece model.
  static Tokenizer load(const std::string& model_path);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  int vocab_size() const;
  const ByteTable& byte_table() const { return byte_table_; }
  const std::string& path() const { return path_; }
  std::vector<int> encode(std::string_view text) const;  // no BOS/EOS added

 private:
  Tokenizer() = default;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  ByteTable byte_table_;
  std::string path_;
};

}  // namespace pgolf

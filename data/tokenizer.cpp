#include "data/tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

namespace pgolf {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // "▁" (U+2581), SentencePiece's space

ByteTable build_byte_table(const sentencepiece::SentencePieceProcessor& sp) {
  auto n = static_cast<size_t>(sp.GetPieceSize());
  ByteTable table{std::vector<int16_t>(n, 0), std::vector<uint8_t>(n, 0), std::vector<uint8_t>(n, 1)};
  for (int id = 0; id < static_cast<int>(n); ++id) {
    if (sp.IsControl(id) || sp.IsUnknown(id) || sp.IsUnused(id)) continue;
    table.is_boundary[id] = 0;
    if (sp.IsByte(id)) {
      table.base_bytes[id] = 1;
      continue;
    }
    std::string_view piece = sp.IdToPiece(id);
    if (piece.starts_with(kSpaceMarker)) {
      table.has_leading_space[id] = 1;
      piece.remove_prefix(kSpaceMarker.size());
    }
    table.base_bytes[id] = static_cast<int16_t>(piece.size());
  }
  return table;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& model_path) {
  Tokenizer tokenizer;
  tokenizer.processor_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = tokenizer.processor_->Load(model_path);
  require(status.ok(), model_path + ": not a SentencePiece model: " + status.ToString());
  tokenizer.byte_table_ = build_byte_table(*tokenizer.processor_);
  tokenizer.path_ = model_path;
  return tokenizer;
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

int Tokenizer::vocab_size() const { return processor_->GetPieceSize(); }

std::vector<int> Tokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error(path_ + ": cannot encode: " + status.ToString());
  return ids;
}

}  // namespace pgolf

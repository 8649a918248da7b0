#include "trainer/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace pgolf {

namespace {

// A window reads tokens[start, start + seq_len] and scores the targets at stream positions
// [first_scored, start + seq_len), where target p is tokens[p + 1].
struct Window {
  int64_t start;
  int64_t first_scored;
};

std::vector<Window> plan_windows(int64_t targets, int seq_len, int stride) {
  std::vector<Window> windows;
  if (stride == 0) {
    for (int64_t start = 0; start < targets; start += seq_len) windows.push_back({start, start});
    return windows;
  }
  int64_t scored_until = 0;
  for (int64_t end = seq_len; scored_until < targets; end = std::min(end + stride, targets)) {
    windows.push_back({end - seq_len, scored_until});
    scored_until = end;
  }
  return windows;
}

// The sequences evaluate_windows and evaluate_documents score, after their shared checks.
int64_t sequences_to_score(std::span<const uint16_t> tokens, const ByteTable& bytes, int64_t vocab,
                           const EvalOptions& options) {
  require(bytes.size() == vocab, "tokenizer vocab " + std::to_string(bytes.size()) + " != model vocab " +
                                     std::to_string(vocab));
  require(options.seq_len > 0, "sequence length must be positive");
  const int64_t available = tokens.empty() ? 0 : static_cast<int64_t>(tokens.size() - 1) / options.seq_len;
  require(available > 0, "val data has " + std::to_string(tokens.size()) + " tokens, fewer than one sequence of " +
                             std::to_string(options.seq_len) + " + 1");
  return options.max_sequences > 0 ? std::min(options.max_sequences, available) : available;
}

// Counts targets [first, last) (target p is tokens[p + 1]; losses[0] is target first's): their loss
// into loss_sum, their bytes and number into result.
void count_targets(std::span<const double> losses, std::span<const uint16_t> tokens, const ByteTable& bytes,
                   int64_t first, int64_t last, double& loss_sum, EvalResult& result) {
  for (int64_t p = first; p < last; ++p) {
    loss_sum += losses[static_cast<size_t>(p - first)];
    result.bytes += bytes.bytes(tokens[static_cast<size_t>(p)], tokens[static_cast<size_t>(p) + 1]);
    ++result.tokens;
  }
}

// val_loss, val_bpb and the time from the loss sum over result.tokens targets.
void finish(EvalResult& result, double loss_sum, std::chrono::steady_clock::time_point started) {
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  require(result.bytes > 0, "the evaluated targets count 0 bytes; cannot compute val_bpb");
  result.val_loss = loss_sum / static_cast<double>(result.tokens);
  result.val_bpb = result.val_loss / std::numbers::ln2 * static_cast<double>(result.tokens) /
                   static_cast<double>(result.bytes);
  result.tokens_per_second = result.seconds > 0 ? static_cast<double>(result.tokens) / result.seconds : 0;
}

}  // namespace

std::vector<double> last_targets(const std::vector<double>& all, size_t windows, size_t scored) {
  require(windows > 0 && all.size() % windows == 0 && scored <= all.size() / windows,
          "last_targets: " + std::to_string(scored) + " targets of each of " + std::to_string(windows) +
              " windows out of " + std::to_string(all.size()));
  const size_t length = all.size() / windows;
  std::vector<double> kept;
  kept.reserve(windows * scored);
  for (size_t w = 0; w < windows; ++w)
    kept.insert(kept.end(), all.begin() + static_cast<std::ptrdiff_t>((w + 1) * length - scored),
                all.begin() + static_cast<std::ptrdiff_t>((w + 1) * length));
  return kept;
}

EvalResult evaluate_windows(std::span<const uint16_t> tokens, const ByteTable& bytes, int64_t vocab,
                            const EvalOptions& options, size_t windows_per_call, const WindowScorer& score,
                            const ChunkAdapter& adapt) {
  EvalResult result;
  result.sequences = sequences_to_score(tokens, bytes, vocab, options);
  require(options.stride >= 0 && options.stride <= options.seq_len,
          "stride " + std::to_string(options.stride) + " must lie in 1..seq_len (" +
              std::to_string(options.seq_len) + "), or 0 for the plain eval");
  require(options.adapt_chunk >= 0 && (options.adapt_chunk == 0 || adapt),
          "test-time training needs a positive chunk and an adapter");

  const int64_t targets = result.sequences * options.seq_len;
  const std::vector<Window> windows = plan_windows(targets, options.seq_len, options.stride);
  // The chunk of a window: the one holding its first scored target (one chunk without adapting).
  const int64_t chunk_size = options.adapt_chunk > 0 ? options.adapt_chunk : targets;
  const int64_t chunks = (targets + chunk_size - 1) / chunk_size;
  auto chunk_of = [&](size_t i) { return windows[i].first_scored / chunk_size; };
  result.windows = static_cast<int64_t>(windows.size());

  const auto started = std::chrono::steady_clock::now();
  double loss_sum = 0;
  const size_t batch = std::max<size_t>(windows_per_call, 1);  // windows per score call and progress report
  ProgressCounter windows_scored(options.progress, "eval", windows.size());
  for (size_t first = 0, count = 0; first < windows.size(); first += count) {
    count = 1;  // a batch never spans two chunks
    while (count < batch && first + count < windows.size() && chunk_of(first + count) == chunk_of(first)) ++count;
    // A window's scored targets are its last ones; the batch asks for its windows' most.
    auto targets_of = [&](const Window& w) { return w.start + options.seq_len - w.first_scored; };
    std::vector<TokenWindow> spans;
    int64_t scored = 0;
    for (size_t i = first; i < first + count; ++i) {
      spans.push_back(tokens.subspan(static_cast<size_t>(windows[i].start), static_cast<size_t>(options.seq_len) + 1));
      scored = std::max(scored, targets_of(windows[i]));
    }
    const std::vector<double> losses = score(spans, static_cast<size_t>(scored));
    require(losses.size() == count * static_cast<size_t>(scored),
            "a window scorer returned " + std::to_string(losses.size()) + " losses for " +
                std::to_string(count * static_cast<size_t>(scored)) + " targets");
    for (size_t i = 0; i < count; ++i) {
      const Window& w = windows[first + i];
      const int64_t unscored = scored - targets_of(w);  // the batch's extra targets this window does not count
      count_targets(std::span(losses).subspan(i * static_cast<size_t>(scored) + static_cast<size_t>(unscored)), tokens,
                    bytes, w.first_scored, w.start + options.seq_len, loss_sum, result);
    }
    windows_scored.advance(count);
    const int64_t chunk = chunk_of(first);
    const bool chunk_done = first + count == windows.size() || chunk_of(first + count) != chunk;
    if (options.adapt_chunk > 0 && chunk_done && chunk + 1 < chunks) {
      const int64_t begin = chunk * chunk_size, end = std::min(begin + chunk_size, targets);
      adapt(chunk, chunks, tokens.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin) + 1));
    }
  }
  finish(result, loss_sum, started);
  return result;
}

EvalResult evaluate_documents(std::span<const uint16_t> tokens, const ByteTable& bytes, int64_t vocab,
                              const EvalOptions& options, int64_t chunk_targets, const DocumentChunkScorer& score) {
  EvalResult result;
  result.sequences = sequences_to_score(tokens, bytes, vocab, options);
  require(chunk_targets > 0 && chunk_targets <= options.seq_len,
          "a document chunk of " + std::to_string(chunk_targets) + " targets: 1 to the sequence length " +
              std::to_string(options.seq_len));
  const int64_t targets = result.sequences * options.seq_len;
  std::vector<int64_t> starts{0};  // where each document's inputs begin
  for (int64_t p = 1; p < targets; ++p)
    if (tokens[static_cast<size_t>(p)] == kBosToken) starts.push_back(p);
  starts.push_back(targets);

  const auto started = std::chrono::steady_clock::now();
  double loss_sum = 0;
  ProgressCounter documents_scored(options.progress, "eval", starts.size() - 1);
  for (size_t d = 0; d + 1 < starts.size(); ++d) {
    const int64_t begin = starts[d], end = starts[d + 1];  // targets at positions [begin, end)
    for (int64_t first = begin; first < end; first += chunk_targets) {
      const int64_t last = std::min(first + chunk_targets, end);  // this chunk: targets [first, last)
      const int64_t context = std::max(begin, last - options.seq_len);
      DocumentChunk chunk;
      chunk.window = tokens.subspan(static_cast<size_t>(context), static_cast<size_t>(last - context) + 1);
      chunk.scored = static_cast<size_t>(last - first);
      chunk.first_of_document = first == begin;
      chunk.last_of_document = last == end;
      const std::vector<double> losses = score(chunk);
      require(losses.size() == chunk.scored, "a document chunk's scorer returned " + std::to_string(losses.size()) +
                                                 " losses for " + std::to_string(chunk.scored) + " targets");
      count_targets(losses, tokens, bytes, first, last, loss_sum, result);
      ++result.windows;
    }
    documents_scored.advance(1);
  }
  finish(result, loss_sum, started);
  return result;
}

template <typename T>
EvalResult evaluate(const Model<T>& model, std::span<const uint16_t> tokens, const ByteTable& bytes,
                    const EvalOptions& options) {
  const size_t windows_per_call = 4 * static_cast<size_t>(std::max(options.threads, 1));
  return evaluate_windows(tokens, bytes, model.config().vocab, options, windows_per_call,
                          [&](std::span<const TokenWindow> windows, size_t scored) {
                            return last_targets(model.token_losses(windows, options.threads), windows.size(), scored);
                          });
}

template EvalResult evaluate<float>(const Model<float>&, std::span<const uint16_t>, const ByteTable&,
                                    const EvalOptions&);
template EvalResult evaluate<double>(const Model<double>&, std::span<const uint16_t>, const ByteTable&,
                                     const EvalOptions&);

}  // namespace pgolf

// How a tensor spec's stages make one codec or decoder: the rule both tables follow. A spec is a
// pipeline (core/spec.h); a leaf stands alone ("int6"); a wrapper takes the rest of the pipeline as
// its inner codec ("prune:0.03+int6"); a corrector takes everything before it as its base codec
// ("int6+lrcorr:rank=4").
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/spec.h"

namespace pgolf {

enum class Role { Leaf, Wrapper, Corrector };

// Entry: {name (exact, or a prefix followed by digits when takes_number), takes_number, role, usage,
// make_leaf(stage), make_composite(stage, inner)}, making std::unique_ptr<Product>.
template <class Product, class Entry>
class CodecPipeline {
 public:
  CodecPipeline(std::span<const Entry> table, std::string_view what) : table_(table), what_(what) {}

  std::unique_ptr<Product> build(std::string_view spec) const {
    auto stages = parse_spec(spec);
    return build(stages, spec);
  }

 private:
  static bool matches(const Entry& e, std::string_view name) {
    if (!e.takes_number) return name == e.name;
    return name.size() > e.name.size() && name.starts_with(e.name) &&
           name.find_first_not_of("0123456789", e.name.size()) == std::string_view::npos;
  }

  const Entry& find_entry(const SpecStage& stage, std::string_view spec) const {
    for (const auto& e : table_)
      if (matches(e, stage.name)) return e;
    std::string known;
    for (const auto& e : table_) known += (known.empty() ? "" : ", ") + std::string(e.usage);
    throw InputError("unknown " + what_ + " '" + std::string(spec) + "' (known: " + known + ")");
  }

  std::unique_ptr<Product> build(std::span<const SpecStage> stages, std::string_view spec) const {
    const auto& last = find_entry(stages.back(), spec);
    if (last.role == Role::Corrector) {
      require(stages.size() >= 2, what_ + " '" + std::string(spec) + "': " + stages.back().name + " corrects a codec before it");
      return last.make_composite(stages.back(), build(stages.first(stages.size() - 1), spec));
    }
    const auto& first = find_entry(stages.front(), spec);
    if (first.role == Role::Wrapper) {
      require(stages.size() >= 2, what_ + " '" + std::string(spec) + "': " + stages.front().name + " needs an inner codec after '+'");
      return first.make_composite(stages.front(), build(stages.subspan(1), spec));
    }
    if (stages.size() > 1)
      throw InputError(what_ + " '" + std::string(spec) + "': '" + stages.front().name + "' cannot be followed by '+" +
                       stages[1].name + "'");
    return first.make_leaf(stages.front());
  }

  std::span<const Entry> table_;
  std::string what_;
};

}  // namespace pgolf

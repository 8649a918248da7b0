#include "core/dtype.h"

#include <cstring>
#include <stdexcept>

#include "core/half.h"

namespace pgolf {

namespace {
struct DTypeTraits {
  DType type;
  std::string_view name;
  size_t size;
  bool is_float;
};
constexpr DTypeTraits kTraits[] = {
    {DType::F64, "F64", 8, true},  {DType::F32, "F32", 4, true},   {DType::F16, "F16", 2, true},
    {DType::BF16, "BF16", 2, true}, {DType::I64, "I64", 8, false}, {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false}, {DType::I8, "I8", 1, false},    {DType::U8, "U8", 1, false},
    {DType::BOOL, "BOOL", 1, false},
};
const DTypeTraits& traits(DType t) { return kTraits[static_cast<int>(t)]; }

template <typename T>
void convert(std::span<const uint8_t> bytes, std::span<float> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(v);
  }
}
}  // namespace

size_t dtype_size(DType t) { return traits(t).size; }
std::string_view dtype_name(DType t) { return traits(t).name; }
bool dtype_is_float(DType t) { return traits(t).is_float; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& t : kTraits)
    if (t.name == name) return t.type;
  return std::nullopt;
}

void to_float(DType t, std::span<const uint8_t> bytes, std::span<float> out) {
  if (bytes.size() != out.size() * dtype_size(t)) throw std::logic_error("to_float: size mismatch");
  switch (t) {
    case DType::F32:
      if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
      return;
    case DType::F64: convert<double>(bytes, out); return;
    case DType::I64: convert<int64_t>(bytes, out); return;
    case DType::I32: convert<int32_t>(bytes, out); return;
    case DType::I16: convert<int16_t>(bytes, out); return;
    case DType::I8: convert<int8_t>(bytes, out); return;
    case DType::U8:
    case DType::BOOL: convert<uint8_t>(bytes, out); return;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        out[i] = t == DType::F16 ? fp16_to_float(h) : bf16_to_float(h);
      }
      return;
  }
}

std::vector<uint8_t> from_float(DType t, std::span<const float> values) {
  std::vector<uint8_t> out(values.size() * dtype_size(t));
  switch (t) {
    case DType::F32:
      if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());  // memcpy of null is undefined
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t h = t == DType::F16 ? float_to_fp16(values[i]) : float_to_bf16(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    default: throw std::logic_error("from_float: not a float output type");
  }
  return out;
}

int64_t element_count(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace pgolf

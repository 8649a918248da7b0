// Element types of checkpoint tensors, with safetensors' names and float conversion.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgolf {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);                        // "BF16", as safetensors spells it
std::optional<DType> dtype_from_name(std::string_view name);  // safetensors' names
bool dtype_is_float(DType t);

// Converts little-endian elements of type t to float (exact for F16, BF16, and integers up to 2^24).
void to_float(DType t, std::span<const uint8_t> bytes, std::span<float> out);
// Converts floats to elements of a float type t (F32, F16 or BF16), rounding to nearest even.
std::vector<uint8_t> from_float(DType t, std::span<const float> values);

int64_t element_count(std::span<const int64_t> shape);
std::string shape_string(std::span<const int64_t> shape);  // "[512, 1024]"

}  // namespace pgolf

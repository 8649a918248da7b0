// An owning array in device memory (plain cudaMalloc, never managed memory), with blocking
// copies to and from host vectors.
#pragma once
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "kernels/cuda_check.h"

namespace pgolf::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count > 0) PGOLF_CUDA_CHECK(cudaMalloc(&data_, count * sizeof(T)));
  }
  explicit DeviceBuffer(std::span<const T> values) : DeviceBuffer(values.size()) { upload(values); }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(data_); }  // no throw from a destructor; freeing null is a no-op

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return count_; }

  // Copies values into the first values.size() elements.
  void upload(std::span<const T> values) {
    if (values.size() > count_) throw std::runtime_error("DeviceBuffer::upload: more values than the buffer holds");
    if (!values.empty())
      PGOLF_CUDA_CHECK(cudaMemcpy(data_, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  // The first count elements (all by default).
  std::vector<T> download(size_t count) const {
    if (count > count_) throw std::runtime_error("DeviceBuffer::download: more values than the buffer holds");
    std::vector<T> values(count);
    if (count > 0) PGOLF_CUDA_CHECK(cudaMemcpy(values.data(), data_, count * sizeof(T), cudaMemcpyDeviceToHost));
    return values;
  }
  std::vector<T> download() const { return download(count_); }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace pgolf::cuda

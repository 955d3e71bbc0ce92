#pragma once
// Devices are tag types; kernels are chosen by overloading on the tag (see backend/backend.hpp).
#include <string_view>

namespace blip2 {

struct cpu {
  static constexpr std::string_view name = "cpu";
};
struct cuda {
  static constexpr std::string_view name = "cuda";
};

template <class D> inline constexpr bool is_device_v = false;
template <> inline constexpr bool is_device_v<cpu> = true;
template <> inline constexpr bool is_device_v<cuda> = true;

}  // namespace blip2

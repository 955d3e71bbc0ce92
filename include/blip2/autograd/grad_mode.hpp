#pragma once
// Whether ops record the autograd graph on this thread; `NoGrad` switches it off for a scope.

namespace blip2 {

struct GradMode {
  static bool& enabled() {
    thread_local bool on = true;
    return on;
  }
};

// RAII scope in which no op records a graph (inference, optimizer updates).
class NoGrad {
 public:
  NoGrad() : prev_(GradMode::enabled()) { GradMode::enabled() = false; }
  ~NoGrad() { GradMode::enabled() = prev_; }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

}  // namespace blip2

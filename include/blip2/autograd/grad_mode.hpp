#pragma once
// Whether ops record the autograd graph on this thread; `NoGrad` switches it off for a scope,
// `EnableGrad` back on.

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

// RAII scope in which ops record again, e.g. checkpoint's recomputation inside a backward pass
// (which itself runs under NoGrad).
class EnableGrad {
 public:
  EnableGrad() : prev_(GradMode::enabled()) { GradMode::enabled() = true; }
  ~EnableGrad() { GradMode::enabled() = prev_; }
  EnableGrad(const EnableGrad&) = delete;
  EnableGrad& operator=(const EnableGrad&) = delete;

 private:
  bool prev_;
};

}  // namespace blip2

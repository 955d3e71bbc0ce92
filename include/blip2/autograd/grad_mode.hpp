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

// Sets whether ops record for a scope, restoring the previous setting after it.
class GradModeScope {
 public:
  explicit GradModeScope(bool on) : prev_(GradMode::enabled()) { GradMode::enabled() = on; }
  ~GradModeScope() { GradMode::enabled() = prev_; }
  GradModeScope(const GradModeScope&) = delete;
  GradModeScope& operator=(const GradModeScope&) = delete;

 private:
  bool prev_;
};

// No op records a graph in this scope (inference, optimizer updates).
struct NoGrad : GradModeScope {
  NoGrad() : GradModeScope(false) {}
};

// Ops record again in this scope, e.g. checkpoint's recomputation inside a backward pass (which
// itself runs under NoGrad).
struct EnableGrad : GradModeScope {
  EnableGrad() : GradModeScope(true) {}
};

}  // namespace blip2

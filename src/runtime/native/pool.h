// The native decode path's threads: the calling thread plus threads - 1 workers that run one
// step's job together and meet at barriers between its phases (a phase's outputs are the next
// one's inputs). Every wait spins first and then sleeps on a futex (std::atomic::wait):
// - spinning, because a decode step has ~5 phases a layer, tens of µs each, and a futex wake per
//   phase would cost as much as the phase;
// - then sleeping, because on a busy machine a partner thread may be descheduled for a whole
//   time slice: a pure spin barrier then burns the core the partner needs (measured here: a
//   135M int4 step went from 3.5 ms to 25-37 ms beside two niced test processes; llama.cpp's
//   spin barriers collapse the same way, docs/BENCH-LLAMACPP.md "Contention");
// - between steps a worker spins a little longer (the next token usually follows within a few
//   hundred µs) and then sleeps, so an idle node burns no CPU (issue 17: ≤ 2 % of a core).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#define OPENLORA_PAUSE() _mm_pause()
#else
#define OPENLORA_PAUSE() ((void)0)
#endif

namespace openlora {

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads < 1 ? 1 : threads) {
    // each worker starts from generation 0, not from whatever it reads when it first runs: a
    // run() or ~Pool() may bump the generation before a new thread gets scheduled, and a worker
    // that took the bumped value as "seen" would wait for a change that never comes
    for (int t = 1; t < threads_; t++) workers_.emplace_back([this, t] { loop(t, 0); });
  }
  ~Pool() {
    quit_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int threads() const { return threads_; }

  // Runs job(t) on every thread t (0 = the caller) and returns when all are done.
  void run(const std::function<void(int)>& job) {
    job_ = &job;
    finished_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    job(0);
    spinThenWait(finished_, [this](int v) { return v == threads_ - 1; }, kPhaseSpin);
    job_ = nullptr;
  }

  // Every thread of the running job waits here until all have arrived.
  void barrier() {
    if (threads_ == 1) return;
    const unsigned gen = barrierGen_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == threads_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      barrierGen_.fetch_add(1, std::memory_order_release);
      barrierGen_.notify_all();
    } else {
      spinThenWait(barrierGen_, [gen](unsigned v) { return v != gen; }, kPhaseSpin);
    }
  }

 private:
  // how long a wait spins before it sleeps: within a step, and for the next step
  static constexpr auto kPhaseSpin = std::chrono::microseconds(50);
  static constexpr auto kStepSpin = std::chrono::microseconds(300);

  // Waits until done(value) holds: spins for `spin`, then sleeps until the value changes.
  template <typename T, typename Done>
  static T spinThenWait(std::atomic<T>& a, Done done, std::chrono::microseconds spin) {
    T v = a.load(std::memory_order_acquire);
    if (done(v)) return v;
    const auto until = std::chrono::steady_clock::now() + spin;
    for (int polls = 1; !done(v = a.load(std::memory_order_acquire)); polls++) {
      OPENLORA_PAUSE();
      if (polls % 64 == 0 && std::chrono::steady_clock::now() > until) {
        while (!done(v = a.load(std::memory_order_acquire))) a.wait(v, std::memory_order_acquire);
        return v;
      }
    }
    return v;
  }

  void loop(int t, unsigned seen) {
    for (;;) {
      seen = spinThenWait(generation_, [seen](unsigned v) { return v != seen; }, kStepSpin);
      if (quit_.load(std::memory_order_acquire)) return;
      (*job_)(t);
      finished_.fetch_add(1, std::memory_order_acq_rel);
      finished_.notify_all();
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::atomic<unsigned> generation_{0};
  std::atomic<bool> quit_{false};
  std::atomic<int> finished_{0};
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<int> arrived_{0};
  std::atomic<unsigned> barrierGen_{0};
};

// [lo, hi) of n items for thread t of T, in multiples of `align` (the last range takes the rest).
inline void share(int n, int t, int T, int align, int& lo, int& hi) {
  const int units = (n + align - 1) / align;
  const int per = units / T, extra = units % T;
  const int a = t * per + (t < extra ? t : extra);
  const int b = a + per + (t < extra ? 1 : 0);
  lo = a * align < n ? a * align : n;
  hi = b * align < n ? b * align : n;
}

}  // namespace openlora

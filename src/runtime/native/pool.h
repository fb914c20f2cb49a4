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
// Thread t runs on the t-th CPU the process may use (Linux; the caller only for the duration of a
// run, its own mask restored after): left to the scheduler, a worker woken after the engine sat
// idle was often placed on the caller's core, and every barrier then waited a time slice (a 135M
// int4 prompt measured 12-28 ms instead of 12 after another model ran; pinned, 12.3 steadily).
// OPENLORA_NATIVE_PIN=never leaves placement to the scheduler.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <pthread.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>
#endif
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
    pinned_ = pinnable();
    for (int t = 1; t < threads_; t++)
      workers_.emplace_back([this, t] {
        if (pinned_) pinTo(t);
        loop(t, 0);
      });
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
#if defined(__linux__)
    cpu_set_t before;
    const bool pin = pinned_ && pthread_getaffinity_np(pthread_self(), sizeof(before), &before) == 0;
    if (pin) pinTo(0);
#endif
    job(0);
    spinThenWait(finished_, [this](int v) { return v == threads_ - 1; }, kPhaseSpin);
    job_ = nullptr;
#if defined(__linux__)
    if (pin) pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
#endif
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
  // one CPU per thread among those the process may use, unless turned off
  bool pinnable() const {
#if defined(__linux__)
    const char* v = std::getenv("OPENLORA_NATIVE_PIN");
    if (threads_ < 2 || (v != nullptr && std::strcmp(v, "never") == 0)) return false;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return false;
    return CPU_COUNT(&set) >= threads_;
#else
    return false;
#endif
  }

  // binds the calling thread to the t-th CPU of the process's set
  static void pinTo(int t) {
#if defined(__linux__)
    cpu_set_t all, one;
    if (sched_getaffinity(0, sizeof(all), &all) != 0) return;
    CPU_ZERO(&one);
    for (int c = 0, seen = 0; c < CPU_SETSIZE; c++)
      if (CPU_ISSET(c, &all) && seen++ == t) {
        CPU_SET(c, &one);
        pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
        return;
      }
#else
    (void)t;
#endif
  }

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
  bool pinned_ = false;
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

// The one worker pool every stage uses (sized by `threads=`); OpenBLAS is kept single-threaded under it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace la {

class ThreadPool {
 public:
  // n_threads counts the calling thread; <= 0 means "all hardware threads".
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(task) for task in [0, n_tasks); the caller takes part and the call blocks until all are
  // done. The first exception thrown by a task is rethrown here. A call made from inside a task runs
  // serially (no nested parallelism).
  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn);

  // Splits [0, n) into at most size() contiguous chunks of at least `grain` items (the last chunk
  // may be shorter) and runs fn(begin, end) on each.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // Number of hardware threads the OS reports (at least 1).
  static int hardware_threads();

 private:
  void worker_loop(int index);
  void work_on_current_job();

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::mutex run_mu_;  // one job at a time

  // The current job.
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_size_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> active_workers_{0};
  std::exception_ptr error_;
  std::mutex error_mu_;
};

// The pool of the current thread's engine call, or nullptr (then kernels run serially).
ThreadPool* current_pool();

// Installs `pool` as current_pool() for the lifetime of the guard.
class PoolScope {
 public:
  explicit PoolScope(ThreadPool* pool);
  ~PoolScope();

 private:
  ThreadPool* previous_;
};

// parallel_for on current_pool(), or a plain serial call when there is none.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace la

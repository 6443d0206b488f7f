// ThreadPool: every task runs once, exceptions propagate, nested calls run serially.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/thread_pool.h"

namespace la {
namespace {

TEST(ThreadPool, RunsEveryTaskOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int n : {0, 1, 3, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.run(n, [&](int64_t i) { hits[i]++; });
      for (int i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeInOrderedChunks) {
  ThreadPool pool(3);
  std::vector<int> seen(1001, 0);
  pool.parallel_for(1001, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) seen[i]++;
  });
  for (int v : seen) EXPECT_EQ(v, 1);
}

TEST(ThreadPool, PropagatesTheFirstException) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run(100, [](int64_t i) {
    if (i == 37) throw std::runtime_error("boom");
  }), std::runtime_error);
  // The pool stays usable.
  std::atomic<int> count{0};
  pool.run(10, [&](int64_t) { count++; });
  EXPECT_EQ(count.load(), 10);
}

TEST(ThreadPool, NestedCallsRunSerially) {
  ThreadPool pool(2);
  std::atomic<int> count{0};
  pool.run(4, [&](int64_t) { pool.run(5, [&](int64_t) { count++; }); });
  EXPECT_EQ(count.load(), 20);
}

TEST(ThreadPool, ScopeInstallsCurrentPool) {
  ThreadPool pool(2);
  EXPECT_EQ(current_pool(), nullptr);
  {
    PoolScope scope(&pool);
    EXPECT_EQ(current_pool(), &pool);
    std::atomic<int> count{0};
    parallel_for(100, 1, [&](int64_t b, int64_t e) { count += static_cast<int>(e - b); });
    EXPECT_EQ(count.load(), 100);
  }
  EXPECT_EQ(current_pool(), nullptr);
}

}  // namespace
}  // namespace la

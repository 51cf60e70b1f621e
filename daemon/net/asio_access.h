// Private to net/: the asio objects behind EventLoop. Heavy header; include only in net/*.cc.
#ifndef MAILPOOL_NET_ASIO_ACCESS_H_
#define MAILPOOL_NET_ASIO_ACCESS_H_

#include <asio.hpp>
#include <optional>
#include <thread>

#include "net/event_loop.h"

namespace mailpool::net {

struct EventLoop::Impl {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::thread::id thread_id;
};

inline asio::io_context& IoContext(EventLoop& loop) { return loop.impl().io; }

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_ASIO_ACCESS_H_

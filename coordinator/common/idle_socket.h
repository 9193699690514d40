#pragma once

// IdleSocketUsable: whether an idle keep-alive connection may carry the next
// request. Shared by every pooled client (HTTP and Thrift, coordinator and
// SDK). Stateless, thread-safe, never blocks.

namespace treaty {

// False when the peer closed the connection on `fd` (EOF), reset it, or sent
// bytes nobody asked for (a connection that is readable while idle cannot
// carry the next request); false for fd < 0. Uses poll() and a MSG_PEEK recv
// that never waits.
bool IdleSocketUsable(int fd);

}  // namespace treaty

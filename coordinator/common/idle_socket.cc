#include "common/idle_socket.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace treaty {

bool IdleSocketUsable(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, 0);
  if (ready == 0) return true;  // nothing to read: still open
  if (ready < 0) return false;
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace treaty

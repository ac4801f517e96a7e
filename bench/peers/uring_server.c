/*
 * A minimal io_uring server, written for bench/compare as the practical
 * per-core limit: no framework, no coroutines, no timeouts, nothing a real
 * server needs beyond the protocol.
 *
 *   greet   TCP_DEFER_ACCEPT (accept once the request is in), multishot
 *           accept, one recv, then send and close linked in one submission
 *   banner  multishot accept, then send and close linked
 *   echo    recv / send until the client closes (also serves `hold`)
 *   discard recv until the client closes
 *
 * Usage: uring_server PORT [greet|banner|echo|discard]
 * Try it: uring_server 9000 & echo hi | nc -q1 127.0.0.1 9000
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum mode { GREET, BANNER, ECHO, DISCARD };
/* What a completion is for, kept in the low bits of user_data. */
enum kind { ACCEPT = 0, RECV = 1, SEND = 2, CLOSE = 3 };

static const char greeting[] = "Hello, client!";
#define GREETING_LENGTH (sizeof greeting - 1)
#define BUFFER_SIZE 16384

struct connection {
  int fd;
  unsigned sent;    /* echo: bytes of buf already sent back */
  unsigned pending; /* echo: bytes of buf to send back */
  char buf[];       /* 1024 bytes for greet (the article's recv size), none for banner */
};

static struct io_uring ring;
static enum mode mode;
static int listener;
static unsigned buffer_size;

static struct io_uring_sqe* sqe(void) {
  struct io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (s == NULL) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

static void tag(struct io_uring_sqe* s, void* pointer, enum kind kind) {
  io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)pointer | kind);
}

static void arm_accept(void) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listener, NULL, NULL, 0);
  tag(s, NULL, ACCEPT);
}

static void arm_recv(struct connection* c) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c->fd, c->buf, buffer_size, 0);
  tag(s, c, RECV);
}

/* A hard link: the close runs even if the send failed. */
static void send_greeting_and_close(struct connection* c) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, greeting, GREETING_LENGTH, MSG_NOSIGNAL);
  s->flags |= IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
  tag(s, c, SEND);
  s = sqe();
  io_uring_prep_close(s, c->fd);
  tag(s, c, CLOSE);
}

static void close_connection(struct connection* c) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_close(s, c->fd);
  tag(s, c, CLOSE);
}

static void send_echo(struct connection* c) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, c->buf + c->sent, c->pending - c->sent, MSG_NOSIGNAL);
  tag(s, c, SEND);
}

static void on_accept(int result, unsigned flags) {
  if (!(flags & IORING_CQE_F_MORE)) arm_accept();
  if (result < 0) return;
  struct connection* c = malloc(sizeof *c + buffer_size);
  if (c == NULL) {
    close(result);
    return;
  }
  c->fd = result;
  if (mode == BANNER) {
    send_greeting_and_close(c);
  } else {
    arm_recv(c);
  }
}

static void on_recv(struct connection* c, int result) {
  if (mode == GREET) {
    send_greeting_and_close(c); /* as the article: answer whatever arrived */
  } else if (result <= 0) {
    close_connection(c);
  } else if (mode == ECHO) {
    c->sent = 0;
    c->pending = (unsigned)result;
    send_echo(c);
  } else {
    arm_recv(c);
  }
}

static void on_send(struct connection* c, int result) {
  if (mode != ECHO) return; /* greet and banner: the linked close follows */
  if (result <= 0) {
    close_connection(c);
    return;
  }
  c->sent += (unsigned)result;
  if (c->sent < c->pending) {
    send_echo(c);
  } else {
    arm_recv(c);
  }
}

static int open_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (mode == GREET) {
    int seconds = 10;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof seconds);
  }
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr*)&address, sizeof address) != 0 || listen(fd, 4096) != 0) {
    perror("listen");
    exit(1);
  }
  return fd;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [greet|banner|echo|discard]\n", argv[0]);
    return 2;
  }
  const char* name = argc > 2 ? argv[2] : "greet";
  mode = !strcmp(name, "banner")    ? BANNER
         : !strcmp(name, "echo")    ? ECHO
         : !strcmp(name, "discard") ? DISCARD
                                    : GREET;
  buffer_size = mode == BANNER ? 0 : mode == GREET ? 1024 : BUFFER_SIZE;
  listener = open_listener(atoi(argv[1]));

  struct io_uring_params params = {0};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(4096, &ring, &params) != 0) {
    memset(&params, 0, sizeof params);
    if (io_uring_queue_init_params(4096, &ring, &params) != 0) {
      perror("io_uring_queue_init");
      return 1;
    }
  }
  arm_accept();
  for (;;) {
    int result = io_uring_submit_and_wait(&ring, 1);
    if (result < 0 && result != -EINTR) {
      fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-result));
      return 1;
    }
    struct io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      uint64_t data = cqe->user_data;
      struct connection* c = (struct connection*)(uintptr_t)(data & ~(uint64_t)3);
      switch ((enum kind)(data & 3)) {
        case ACCEPT:
          on_accept(cqe->res, cqe->flags);
          break;
        case RECV:
          on_recv(c, cqe->res);
          break;
        case SEND:
          on_send(c, cqe->res);
          break;
        case CLOSE:
          free(c);
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

/*
 * The DNS door's UDP fast path: a thread that answers queries for the served names straight from
 * the socket, in batches of up to 64 datagrams per recvmmsg/sendmmsg, and hands every other
 * datagram to JavaScript (src/doors/dns-server.ts), which forwards, refuses or rejects it as it
 * does without this path.
 *
 * Why C: per answered query, Node's dgram spends ~5 µs of user time and one recvmsg plus one
 * sendmsg (~6.5 µs in the kernel); dnsmasq spends ~1.4 µs and the same syscalls. Batching the
 * syscalls and leaving JavaScript out is the only way to reach dnsmasq's rate on one core.
 *
 * The answers are byte-identical to the JavaScript path's (src/doors/dns-wire.ts buildResponse),
 * which stays the reference: anything this file is not sure about (a response, an opcode other
 * than QUERY, a question count other than one, a compression pointer, a label holding a dot, a
 * class other than IN, a name not served) goes to JavaScript unchanged. The test suite runs the
 * same DNS door tests with and without this path and compares both byte for byte.
 *
 * Loaded by src/doors/dns-fast-path.ts; built by src/native/build.sh (no node-gyp: one cc call).
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#define NODE_GYP_MODULE_NAME dns_fast_path
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
/* A datagram of any size is received whole, so what JavaScript forwards is what the client sent. */
#define MAX_DATAGRAM 65536
#define MAX_NAME 256
/* Datagrams waiting for JavaScript; beyond this they are dropped (and counted), as a full socket
 * buffer would drop them. */
#define MAX_HANDOFF_QUEUE 4096

typedef struct {
  uint8_t family; /* 4 or 6 */
  uint8_t prefix;
  uint8_t addr[16];
} cidr_t;

typedef struct {
  uint8_t *data;
  size_t len;
  uint16_t count;
} section_t;

typedef struct door {
  int fd;
  int wake_fd;
  int ipv6;
  pthread_t thread;
  int thread_started;
  int closed;
  napi_threadsafe_function handoff;

  char **names; /* served names: lowercase, dot-joined, no trailing dot */
  size_t *name_lens;
  size_t name_count;
  section_t a, aaaa, any;
  size_t slot; /* bytes per outgoing answer: header, the longest question, every record */
  cidr_t *allow;
  size_t allow_count;

  atomic_uint_fast64_t answered;
  atomic_uint_fast64_t handoff_dropped;
} door_t;

/* An IP address as text, with an IPv6 zone (`fe80::1%eth0`, `%2`) as Node writes and reads them. */
#define ADDRESS_TEXT (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE)

/* One datagram on its way to JavaScript. */
typedef struct {
  size_t len;
  char address[ADDRESS_TEXT];
  uint16_t port;
  uint8_t data[];
} handoff_t;

/* ---------- answering (mirrors dns-wire.ts parseQuery + dns-server.ts respond) ---------- */

static int name_served(const door_t *d, const char *name, size_t len) {
  for (size_t i = 0; i < d->name_count; i++) {
    if (d->name_lens[i] == len && memcmp(d->names[i], name, len) == 0) return 1;
  }
  return 0;
}

/* Unmaps ::ffff:a.b.c.d, as CidrList does, so IPv4 ranges match IPv4 peers of a dual-stack socket. */
static int source_allowed(const door_t *d, const struct sockaddr_storage *src) {
  uint8_t addr[16];
  int family;
  if (src->ss_family == AF_INET) {
    memcpy(addr, &((const struct sockaddr_in *)src)->sin_addr, 4);
    family = 4;
  } else {
    const uint8_t *a6 = ((const struct sockaddr_in6 *)src)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a6, mapped, 12) == 0) {
      memcpy(addr, a6 + 12, 4);
      family = 4;
    } else {
      memcpy(addr, a6, 16);
      family = 6;
    }
  }
  for (size_t i = 0; i < d->allow_count; i++) {
    const cidr_t *c = &d->allow[i];
    if (c->family != family) continue;
    int full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0) continue;
    if (rest && ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest)) & 0xff)) continue;
    return 1;
  }
  return 0;
}

/* Writes the answer to `q` into `out` and returns its length, or 0 when JavaScript should decide. */
static size_t answer(const door_t *d, const uint8_t *q, size_t len, const struct sockaddr_storage *src, uint8_t *out) {
  if (len < 12 || (q[2] & 0x80) || ((q[2] >> 3) & 0x0f) != 0) return 0;
  if (q[4] != 0 || q[5] != 1) return 0;
  char name[MAX_NAME];
  size_t name_len = 0, total = 0, p = 12;
  for (;;) {
    if (p >= len) return 0;
    uint8_t l = q[p];
    if (l & 0xc0) return 0;
    p++;
    if (l == 0) break;
    total += l + 1u;
    if (total > 255 || p + l > len) return 0;
    if (name_len) name[name_len++] = '.';
    for (uint8_t i = 0; i < l; i++) {
      uint8_t c = q[p + i];
      if (c == '.') return 0;
      name[name_len++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
    }
    p += l;
  }
  if (p + 4 > len) return 0;
  uint16_t qtype = (uint16_t)(q[p] << 8 | q[p + 1]);
  uint16_t qclass = (uint16_t)(q[p + 2] << 8 | q[p + 3]);
  size_t question_end = p + 4;
  if (qclass != 1 || !name_served(d, name, name_len)) return 0;

  const section_t *s = qtype == 1 ? &d->a : qtype == 28 ? &d->aaaa : qtype == 255 ? &d->any : NULL;
  int ra = source_allowed(d, src);
  out[0] = q[0];
  out[1] = q[1];
  out[2] = 0x80 | 0x04 | (q[2] & 0x01); /* QR, AA, RD echoed; opcode 0 */
  out[3] = (ra ? 0x80 : 0) | (q[3] & 0x10); /* RA, CD echoed, NOERROR */
  out[4] = 0;
  out[5] = 1;
  out[6] = s ? (uint8_t)(s->count >> 8) : 0;
  out[7] = s ? (uint8_t)(s->count & 0xff) : 0;
  memset(out + 8, 0, 4);
  memcpy(out + 12, q + 12, question_end - 12);
  size_t n = question_end;
  if (s && s->len) {
    memcpy(out + n, s->data, s->len);
    n += s->len;
  }
  return n;
}

/* ---------- addresses ---------- */

/* Fills `sa` from `text` (IPv4, or IPv6 with an optional zone) and `port`; family 4 or 6 as
 * wanted (0: either). Returns the address length, or 0 when `text` is no such address. */
static socklen_t parse_address(const char *text, int family, uint16_t port, struct sockaddr_storage *sa) {
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
  if (family != 6 && inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    return sizeof *s4;
  }
  if (family == 4) return 0;
  char addr[ADDRESS_TEXT];
  size_t n = strlen(text);
  if (n >= sizeof addr) return 0;
  memcpy(addr, text, n + 1);
  char *zone = strchr(addr, '%');
  if (zone) *zone++ = '\0';
  if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) return 0;
  if (zone) {
    char *end;
    unsigned long id = strtoul(zone, &end, 10);
    s6->sin6_scope_id = (*zone && !*end) ? (uint32_t)id : if_nametoindex(zone);
    if (!s6->sin6_scope_id) return 0;
  }
  s6->sin6_family = AF_INET6;
  s6->sin6_port = htons(port);
  return sizeof *s6;
}

/* Writes the source address as text, with its zone as a number when it has one. */
static uint16_t format_address(const struct sockaddr_storage *sa, char *out) {
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, out, ADDRESS_TEXT);
    return ntohs(s4->sin_port);
  }
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
  inet_ntop(AF_INET6, &s6->sin6_addr, out, ADDRESS_TEXT);
  if (s6->sin6_scope_id) snprintf(out + strlen(out), ADDRESS_TEXT - strlen(out), "%%%u", (unsigned)s6->sin6_scope_id);
  return ntohs(s6->sin6_port);
}

/* ---------- the receiving thread ---------- */

static void hand_off(door_t *d, const uint8_t *data, size_t len, const struct sockaddr_storage *src) {
  handoff_t *h = malloc(sizeof(handoff_t) + len);
  if (!h) {
    atomic_fetch_add(&d->handoff_dropped, 1);
    return;
  }
  h->len = len;
  memcpy(h->data, data, len);
  h->port = format_address(src, h->address);
  if (napi_call_threadsafe_function(d->handoff, h, napi_tsfn_nonblocking) != napi_ok) {
    free(h);
    atomic_fetch_add(&d->handoff_dropped, 1);
  }
}

/* Sends msgs[0..n), skipping one that fails (a peer the kernel will not send to), never blocking
 * the loop on a single bad address. */
static void send_all(int fd, struct mmsghdr *msgs, int n) {
  int done = 0;
  while (done < n) {
    int r = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
    if (r > 0) done += r;
    else if (r < 0 && errno == EINTR) continue;
    else done++;
  }
}

static void *serve(void *arg) {
  door_t *d = arg;
  uint8_t *in = malloc((size_t)BATCH * MAX_DATAGRAM);
  uint8_t *out = malloc((size_t)BATCH * d->slot);
  struct mmsghdr rm[BATCH], sm[BATCH];
  struct iovec ri[BATCH], si[BATCH];
  struct sockaddr_storage from[BATCH];
  if (!in || !out) {
    free(in);
    free(out);
    return NULL;
  }
  memset(rm, 0, sizeof rm);
  memset(sm, 0, sizeof sm);
  for (int i = 0; i < BATCH; i++) {
    ri[i].iov_base = in + (size_t)i * MAX_DATAGRAM;
    ri[i].iov_len = MAX_DATAGRAM;
    rm[i].msg_hdr.msg_iov = &ri[i];
    rm[i].msg_hdr.msg_iovlen = 1;
    rm[i].msg_hdr.msg_name = &from[i];
  }
  struct pollfd pfd[2] = {{.fd = d->fd, .events = POLLIN}, {.fd = d->wake_fd, .events = POLLIN}};
  for (;;) {
    for (int i = 0; i < BATCH; i++) rm[i].msg_hdr.msg_namelen = sizeof from[i];
    int n = recvmmsg(d->fd, rm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* Not expected on an unconnected UDP socket; do not spin on it. */
        usleep(1000);
      }
      if (poll(pfd, 2, -1) < 0 && errno != EINTR) break;
      if (pfd[1].revents) break;
      continue;
    }
    int replies = 0;
    for (int i = 0; i < n; i++) {
      const uint8_t *q = ri[i].iov_base;
      size_t len = rm[i].msg_len;
      uint8_t *o = out + (size_t)replies * d->slot;
      size_t olen = answer(d, q, len, &from[i], o);
      if (!olen) {
        hand_off(d, q, len, &from[i]);
        continue;
      }
      si[replies].iov_base = o;
      si[replies].iov_len = olen;
      sm[replies].msg_hdr.msg_iov = &si[replies];
      sm[replies].msg_hdr.msg_iovlen = 1;
      sm[replies].msg_hdr.msg_name = &from[i];
      sm[replies].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
      replies++;
    }
    if (replies) {
      send_all(d->fd, sm, replies);
      atomic_fetch_add(&d->answered, (uint_fast64_t)replies);
    }
  }
  free(in);
  free(out);
  return NULL;
}

/* ---------- JavaScript glue ---------- */

#define CHECK(call)                                                                   \
  do {                                                                                \
    if ((call) != napi_ok) {                                                          \
      napi_throw_error(env, "ERR_DNS_FAST_PATH", "dns fast path: " #call " failed"); \
      return NULL;                                                                    \
    }                                                                                 \
  } while (0)

static const char *errno_code(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "ERR_DNS_FAST_PATH";
  }
}

static void throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_code(e), msg);
}

/* Runs on the JS thread for each handed-off datagram: onQuery(buffer, address, port). */
static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  (void)context;
  handoff_t *h = data;
  if (env && fn) {
    napi_value argv[3], undefined;
    void *copy;
    if (napi_create_buffer_copy(env, h->len, h->data, &copy, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, h->address, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
        napi_create_uint32(env, h->port, &argv[2]) == napi_ok && napi_get_undefined(env, &undefined) == napi_ok) {
      napi_call_function(env, undefined, fn, 3, argv, NULL);
    }
  }
  free(h);
}

static void stop(door_t *d) {
  if (d->closed) return;
  d->closed = 1;
  if (d->thread_started) {
    uint64_t one = 1;
    ssize_t w = write(d->wake_fd, &one, sizeof one);
    (void)w;
    pthread_join(d->thread, NULL);
  }
  if (d->handoff) napi_release_threadsafe_function(d->handoff, napi_tsfn_abort);
  d->handoff = NULL;
  if (d->fd >= 0) close(d->fd);
  if (d->wake_fd >= 0) close(d->wake_fd);
  d->fd = d->wake_fd = -1;
}

static void free_door(door_t *d) {
  for (size_t i = 0; i < d->name_count; i++) free(d->names[i]);
  free(d->names);
  free(d->name_lens);
  free(d->a.data);
  free(d->aaaa.data);
  free(d->any.data);
  free(d->allow);
  free(d);
}

/* The process (or worker thread) is ending without close(): stop the thread before the env goes. */
static void cleanup_hook(void *arg) { stop(arg); }

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  door_t *d = data;
  stop(d);
  napi_remove_env_cleanup_hook(env, cleanup_hook, d);
  free_door(d);
}

static napi_value get_prop(napi_env env, napi_value obj, const char *key) {
  napi_value v = NULL;
  napi_get_named_property(env, obj, key, &v);
  return v;
}

static int copy_buffer(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  void *src;
  if (napi_get_buffer_info(env, v, &src, len) != napi_ok) return 0;
  *data = malloc(*len ? *len : 1);
  if (!*data) return 0;
  memcpy(*data, src, *len);
  return 1;
}

/*
 * open({ host, port, reusePort, names, a, aCount, aaaa, aaaaCount, allow: [{ family, bytes, prefix }],
 *        onQuery(buffer, address, port) }) → handle
 * Throws an Error whose code is the errno name (EADDRINUSE, EACCES, …) when binding fails.
 */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  CHECK(napi_get_cb_info(env, info, &argc, &opts, NULL, NULL));

  char host[ADDRESS_TEXT + 1];
  size_t host_len;
  uint32_t port, a_count, aaaa_count;
  bool reuse_port;
  CHECK(napi_get_value_string_utf8(env, get_prop(env, opts, "host"), host, sizeof host, &host_len));
  CHECK(napi_get_value_uint32(env, get_prop(env, opts, "port"), &port));
  CHECK(napi_get_value_bool(env, get_prop(env, opts, "reusePort"), &reuse_port));
  CHECK(napi_get_value_uint32(env, get_prop(env, opts, "aCount"), &a_count));
  CHECK(napi_get_value_uint32(env, get_prop(env, opts, "aaaaCount"), &aaaa_count));

  door_t *d = calloc(1, sizeof *d);
  if (!d) {
    napi_throw_error(env, "ERR_DNS_FAST_PATH", "dns fast path: out of memory");
    return NULL;
  }
  d->fd = d->wake_fd = -1;

  napi_value names = get_prop(env, opts, "names"), allow = get_prop(env, opts, "allow");
  uint32_t count;
  if (napi_get_array_length(env, names, &count) != napi_ok) goto bad_options;
  d->names = calloc(count ? count : 1, sizeof(char *));
  d->name_lens = calloc(count ? count : 1, sizeof(size_t));
  if (!d->names || !d->name_lens) goto bad_options;
  for (uint32_t i = 0; i < count; i++) {
    napi_value v;
    char buf[MAX_NAME + 1];
    size_t n;
    if (napi_get_element(env, names, i, &v) != napi_ok || napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) goto bad_options;
    if (n >= MAX_NAME) continue; /* cannot be a question's name */
    d->names[d->name_count] = strndup(buf, n);
    if (!d->names[d->name_count]) goto bad_options;
    d->name_lens[d->name_count++] = n;
  }
  d->a.count = (uint16_t)a_count;
  d->aaaa.count = (uint16_t)aaaa_count;
  d->any.count = (uint16_t)(a_count + aaaa_count);
  if (!copy_buffer(env, get_prop(env, opts, "a"), &d->a.data, &d->a.len) ||
      !copy_buffer(env, get_prop(env, opts, "aaaa"), &d->aaaa.data, &d->aaaa.len))
    goto bad_options;
  d->any.len = d->a.len + d->aaaa.len;
  d->any.data = malloc(d->any.len ? d->any.len : 1);
  if (!d->any.data) goto bad_options;
  memcpy(d->any.data, d->a.data, d->a.len);
  memcpy(d->any.data + d->a.len, d->aaaa.data, d->aaaa.len);
  /* A question is at most 255 bytes of name, its terminator, type and class. */
  d->slot = 12 + 260 + d->any.len;
  if (d->slot > 65507) goto bad_options;

  if (napi_get_array_length(env, allow, &count) != napi_ok) goto bad_options;
  d->allow = calloc(count ? count : 1, sizeof(cidr_t));
  if (!d->allow) goto bad_options;
  for (uint32_t i = 0; i < count; i++) {
    napi_value e;
    uint32_t family, prefix;
    void *bytes;
    size_t blen;
    if (napi_get_element(env, allow, i, &e) != napi_ok || napi_get_value_uint32(env, get_prop(env, e, "family"), &family) != napi_ok ||
        napi_get_value_uint32(env, get_prop(env, e, "prefix"), &prefix) != napi_ok ||
        napi_get_buffer_info(env, get_prop(env, e, "bytes"), &bytes, &blen) != napi_ok)
      goto bad_options;
    if (!((family == 4 && blen == 4 && prefix <= 32) || (family == 6 && blen == 16 && prefix <= 128))) goto bad_options;
    d->allow[d->allow_count].family = (uint8_t)family;
    d->allow[d->allow_count].prefix = (uint8_t)prefix;
    memcpy(d->allow[d->allow_count].addr, bytes, blen);
    d->allow_count++;
  }

  /* The socket: bound as dgram would bind it (dual-stack for an IPv6 host). */
  struct sockaddr_storage sa;
  socklen_t sa_len = port <= 65535 ? parse_address(host, 0, (uint16_t)port, &sa) : 0;
  if (!sa_len) {
    free_door(d);
    napi_throw_type_error(env, "ERR_DNS_FAST_PATH", "dns fast path: the host is not an IP address (with a zone that exists) or the port is out of range");
    return NULL;
  }
  d->ipv6 = sa.ss_family == AF_INET6;
  d->fd = socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (d->fd < 0) {
    throw_errno(env, "dns fast path: socket", errno);
    free_door(d);
    return NULL;
  }
  int on = 1, off = 0, rcvbuf = 4 << 20;
  if (d->ipv6) setsockopt(d->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  /* Several worker processes each bind their own socket to the one port; the kernel spreads
   * queries among them (only sockets of the same user may join). */
  if (reuse_port) setsockopt(d->fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  /* A bigger receive buffer rides out bursts; the kernel caps it at net.core.rmem_max. */
  setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (bind(d->fd, (struct sockaddr *)&sa, sa_len) < 0) {
    int e = errno;
    close(d->fd);
    d->fd = -1;
    char what[96];
    snprintf(what, sizeof what, "dns fast path: bind %s:%u", host, port);
    throw_errno(env, what, e);
    free_door(d);
    return NULL;
  }
  d->wake_fd = eventfd(0, EFD_CLOEXEC);
  if (d->wake_fd < 0) {
    throw_errno(env, "dns fast path: eventfd", errno);
    close(d->fd);
    free_door(d);
    return NULL;
  }

  napi_value on_query, resource_name;
  on_query = get_prop(env, opts, "onQuery");
  if (napi_create_string_utf8(env, "pullthrough:dns-fast-path", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_threadsafe_function(env, on_query, NULL, resource_name, MAX_HANDOFF_QUEUE, 1, NULL, NULL, NULL, call_js, &d->handoff) != napi_ok) {
    close(d->fd);
    close(d->wake_fd);
    free_door(d);
    napi_throw_type_error(env, "ERR_DNS_FAST_PATH", "dns fast path: onQuery must be a function");
    return NULL;
  }
  /* The door's TCP listener keeps the process alive; this path must not keep it alive after. */
  napi_unref_threadsafe_function(env, d->handoff);

  if (pthread_create(&d->thread, NULL, serve, d) != 0) {
    int e = errno;
    stop(d);
    free_door(d);
    throw_errno(env, "dns fast path: thread", e);
    return NULL;
  }
  d->thread_started = 1;
  napi_add_env_cleanup_hook(env, cleanup_hook, d);

  napi_value handle;
  if (napi_create_external(env, d, finalize, NULL, &handle) != napi_ok) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, d);
    stop(d);
    free_door(d);
    napi_throw_error(env, "ERR_DNS_FAST_PATH", "dns fast path: napi_create_external failed");
    return NULL;
  }
  return handle;

bad_options:
  free_door(d);
  napi_throw_type_error(env, "ERR_DNS_FAST_PATH", "dns fast path: malformed options");
  return NULL;
}

static door_t *door_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  void *d = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want || napi_get_value_external(env, argv[0], &d) != napi_ok) {
    napi_throw_type_error(env, "ERR_DNS_FAST_PATH", "dns fast path: not a handle");
    return NULL;
  }
  return d;
}

/* port(handle) → the bound port. */
static napi_value js_port(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  door_t *d = door_arg(env, info, 1, argv);
  if (!d) return NULL;
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (d->fd < 0 || getsockname(d->fd, (struct sockaddr *)&sa, &len) < 0) {
    throw_errno(env, "dns fast path: getsockname", d->fd < 0 ? EBADF : errno);
    return NULL;
  }
  uint16_t port = sa.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&sa)->sin_port) : ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
  CHECK(napi_create_uint32(env, port, &result));
  return result;
}

/* send(handle, buffer, address, port) → true when the datagram went out (false once closed, or
 * for an address the kernel refuses). sendto on a UDP socket is safe next to the thread's sends. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[4], result;
  door_t *d = door_arg(env, info, 4, argv);
  if (!d) return NULL;
  void *data;
  size_t len, alen;
  char address[ADDRESS_TEXT + 1];
  uint32_t port;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  CHECK(napi_get_value_string_utf8(env, argv[2], address, sizeof address, &alen));
  CHECK(napi_get_value_uint32(env, argv[3], &port));
  int ok = 0;
  if (d->fd >= 0 && port <= 65535) {
    struct sockaddr_storage sa;
    socklen_t sa_len = parse_address(address, d->ipv6 ? 6 : 4, (uint16_t)port, &sa);
    if (sa_len) ok = sendto(d->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sa_len) >= 0;
  }
  CHECK(napi_get_boolean(env, ok, &result));
  return result;
}

/* stats(handle) → { answered, dropped } since open. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, v;
  door_t *d = door_arg(env, info, 1, argv);
  if (!d) return NULL;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_double(env, (double)atomic_load(&d->answered), &v));
  CHECK(napi_set_named_property(env, result, "answered", v));
  CHECK(napi_create_double(env, (double)atomic_load(&d->handoff_dropped), &v));
  CHECK(napi_set_named_property(env, result, "dropped", v));
  return result;
}

/* close(handle): stops the thread, closes the socket; datagrams not yet handed over are dropped. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  door_t *d = door_arg(env, info, 1, argv);
  if (!d) return NULL;
  stop(d);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"port", NULL, js_port, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

/*
 * TCP_NOTSENT_LOWAT on sockets Node.js accepted (Node has no setsockopt of its own).
 *
 * Why: a socket whose send buffer fills megabytes ahead of its reader hands the reader bytes that
 * left every CPU cache long ago. On loopback and on a node where the client shares the cores, the
 * client then pays for cache misses on every byte it copies and decrypts: one curl took a warm
 * 1 GiB blob over TLS at ~860 MB/s from pullthrough and ~990 from nginx, which writes 16 KiB at a
 * time and so keeps its socket shallow. Capping the bytes not yet sent keeps them fresh: ~990 from
 * pullthrough too (docs/performance.md, fifteenth round).
 *
 * Loaded by src/net/tcp-options.ts; built by src/native/build.sh (one cc call, like the DNS door's).
 */
#define NAPI_VERSION 8
#define NODE_GYP_MODULE_NAME tcp_options
#include <node_api.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* setNotSentLowat(fd, bytes) → whether the kernel took it (false for a descriptor that is not a
 * TCP socket). */
static napi_value js_set_notsent_lowat(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  int32_t fd, bytes;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &bytes) != napi_ok || fd < 0 || bytes <= 0) {
    napi_throw_type_error(env, NULL, "setNotSentLowat(fd, bytes): a descriptor and a positive byte count");
    return NULL;
  }
  int ok = setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes) == 0;
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}

/* getNotSentLowat(fd) → the socket's TCP_NOTSENT_LOWAT (what a test or a diagnosis checks), or
 * -1 when the kernel cannot say. */
static napi_value js_get_notsent_lowat(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "getNotSentLowat(fd): a descriptor");
    return NULL;
  }
  unsigned int bytes = 0;
  socklen_t len = sizeof bytes;
  double value = getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, &len) == 0 ? (double)bytes : -1;
  if (napi_create_double(env, value, &result) != napi_ok) return NULL;
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"setNotSentLowat", NULL, js_set_notsent_lowat, NULL, NULL, NULL, napi_default, NULL},
      {"getNotSentLowat", NULL, js_get_notsent_lowat, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

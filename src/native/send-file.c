/*
 * sendfile(2) from a cached blob's file to a plain-TCP client socket, on a thread of its own.
 *
 * Why: Node.js has no sendfile. Serving a warm blob otherwise reads each chunk into a buffer on
 * the thread pool and writes it to the socket from the event loop: two copies of every byte and
 * two hops between threads per chunk. sendfile hands the page cache's pages to the socket with no
 * copy on the server's side, the way nginx serves the same file (docs/performance.md, twentieth
 * round).
 *
 * Each transfer runs on its own small thread: sendfile while the socket takes bytes, poll() when
 * it does not. One thread per transfer keeps a blob that is not in the page cache (sendfile then
 * waits for the disk) from holding up any other download. The thread works on duplicates of both
 * descriptors, so whatever Node does with its own (a client that goes away makes Node close the
 * socket) the thread never writes into a descriptor number that has meanwhile been reused; a
 * cancel (a byte on the job's eventfd) ends it early, and the descriptors are then closed. A
 * transfer alone lifts its socket's send cap while it runs (lone_cap, below).
 *
 * Loaded by src/net/send-file.ts; built by src/native/build.sh (one cc call, like the others).
 */
#define NAPI_VERSION 8
#define NODE_GYP_MODULE_NAME send_file
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

/* One transfer. Owned jointly by its thread's completion (delivered on the JS thread) and the
 * JS handle (an external): both run on the JS thread, so a plain count decides who frees it. */
typedef struct {
  int sock, file, wake; /* duplicates of the caller's socket and file; the cancel eventfd */
  off_t pos;
  int64_t left, sent;
  int err; /* errno of the failure, 0 when every byte went out */
  int done; /* completion delivered: cancel is a no-op, wake is closed */
  int refs;
  napi_ref callback;
  napi_threadsafe_function tsfn;
} job_t;

/* Per Node.js environment (the main thread and each worker): where finished jobs are delivered. */
typedef struct {
  napi_threadsafe_function tsfn;
} instance_t;

/* Bytes per sendfile call: the socket takes less anyway; this only bounds one call's count. */
#define STEP (16 << 20)
/* A transfer thread's stack: it calls sendfile and poll, nothing deep. */
#define STACK (64 << 10)

/* Transfers running in this process (every thread's), for lone_cap. */
static atomic_int running;

/*
 * The send cap a transfer's socket should have now, given the cap it came with (`own`, > 0).
 *
 * The doors cap each socket's unsent bytes (TCP_NOTSENT_LOWAT, 128 KiB: src/net/tcp-options.ts),
 * and with sixteen transfers at once that cap is what puts pullthrough ahead of nginx. A transfer
 * alone under it wakes every few hundred KB for another sendfile (2251 calls and 678 waits per
 * GiB) and, where wake-ups are dear, ran 11-19 % below nginx's static file, which sends with no
 * cap; uncapped (170 calls, 41 waits) it came level. A 2 MiB cap gained it nothing, and sixteen
 * transfers with a larger cap each (512 KiB, or none) lost 18-31 % (docs/performance.md,
 * twenty-first session). So a transfer with the process to itself goes uncapped (0: the system's
 * net.ipv4.tcp_notsent_lowat, unlimited by default, as nginx's sockets have), and from the
 * second transfer on every socket keeps its own.
 */
static int lone_cap(int own) {
  return atomic_load_explicit(&running, memory_order_relaxed) <= 1 ? 0 : own;
}

static void set_cap(int sock, int bytes) {
  setsockopt(sock, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes);
}

static void release(job_t *job) {
  if (--job->refs == 0) free(job);
}

static void *run(void *arg) {
  job_t *job = arg;
  /* A socket with no cap of its own (0, or not TCP) is left as it is. */
  int own = 0;
  socklen_t size = sizeof own;
  int capped = getsockopt(job->sock, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &own, &size) == 0 && own > 0;
  int cap = own;
  atomic_fetch_add_explicit(&running, 1, memory_order_relaxed);
  while (job->left > 0) {
    /* Looked at again after every wait: another transfer may have started or ended meanwhile. */
    if (capped) {
      int want = lone_cap(own);
      if (want != cap) set_cap(job->sock, cap = want);
    }
    ssize_t n = sendfile(job->sock, job->file, &job->pos, job->left < STEP ? (size_t)job->left : STEP);
    if (n > 0) {
      job->left -= n;
      job->sent += n;
      continue;
    }
    if (n == 0) { /* the file is shorter than the range asked for */
      job->err = ENODATA;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      job->err = errno;
      break;
    }
    struct pollfd fds[2] = {{.fd = job->sock, .events = POLLOUT}, {.fd = job->wake, .events = POLLIN}};
    while (poll(fds, 2, -1) < 0 && errno == EINTR) {
    }
    if (fds[1].revents) {
      job->err = ECANCELED;
      break;
    }
    /* Writable, or an error or hang-up that the next sendfile reports. */
  }
  atomic_fetch_sub_explicit(&running, 1, memory_order_relaxed);
  /* The connection outlives the transfer (keep-alive): what Node writes on it next goes under
   * the socket's own cap again. */
  if (cap != own) set_cap(job->sock, own);
  close(job->sock);
  close(job->file);
  /* Queue size 0 (unbounded): never blocks. napi_closing when the environment is going away; the
   * job is then never freed, as everything else of that environment. */
  napi_call_threadsafe_function(job->tsfn, job, napi_tsfn_nonblocking);
  return NULL;
}

/* On the JS thread: callback(errno, bytesSent). */
static void deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)js_cb;
  (void)context;
  job_t *job = data;
  job->done = 1;
  close(job->wake);
  if (env != NULL) {
    napi_value cb, argv[2], global;
    if (napi_get_reference_value(env, job->callback, &cb) == napi_ok && cb != NULL && napi_create_int32(env, job->err, &argv[0]) == napi_ok &&
        napi_create_double(env, (double)job->sent, &argv[1]) == napi_ok && napi_get_global(env, &global) == napi_ok) {
      napi_call_function(env, global, cb, 2, argv, NULL);
    }
    napi_delete_reference(env, job->callback);
  }
  release(job);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  release(data);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* sendFile(socketFd, fileFd, position, length, callback(errno, bytesSent)) → a handle for cancel().
 * Throws when the descriptors cannot be duplicated or no thread can be started. */
static napi_value js_send_file(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], handle;
  int32_t sock, file;
  int64_t pos, len;
  napi_valuetype cb_type;
  instance_t *inst;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || napi_get_value_int32(env, argv[0], &sock) != napi_ok ||
      napi_get_value_int32(env, argv[1], &file) != napi_ok || napi_get_value_int64(env, argv[2], &pos) != napi_ok ||
      napi_get_value_int64(env, argv[3], &len) != napi_ok || napi_typeof(env, argv[4], &cb_type) != napi_ok || cb_type != napi_function || sock < 0 ||
      file < 0 || pos < 0 || len < 0) {
    napi_throw_type_error(env, NULL, "sendFile(socketFd, fileFd, position, length, callback)");
    return NULL;
  }
  if (napi_get_instance_data(env, (void **)&inst) != napi_ok || inst == NULL) return fail(env, "send-file: module not initialised");
  job_t *job = calloc(1, sizeof *job);
  if (job == NULL) return fail(env, "send-file: out of memory");
  job->sock = fcntl(sock, F_DUPFD_CLOEXEC, 0);
  job->file = fcntl(file, F_DUPFD_CLOEXEC, 0);
  job->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (job->sock < 0 || job->file < 0 || job->wake < 0) {
    if (job->sock >= 0) close(job->sock);
    if (job->file >= 0) close(job->file);
    if (job->wake >= 0) close(job->wake);
    free(job);
    return fail(env, "send-file: cannot duplicate the descriptors");
  }
  job->pos = (off_t)pos;
  job->left = len;
  job->tsfn = inst->tsfn;
  job->refs = 2; /* the completion and the JS handle */
  int referenced = napi_create_reference(env, argv[4], 1, &job->callback) == napi_ok;
  if (!referenced || napi_create_external(env, job, finalize_handle, NULL, &handle) != napi_ok) {
    if (referenced) napi_delete_reference(env, job->callback);
    close(job->sock);
    close(job->file);
    close(job->wake);
    free(job);
    return fail(env, "send-file: cannot create the handle");
  }
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int started = pthread_create(&thread, &attr, run, job);
  pthread_attr_destroy(&attr);
  if (started != 0) {
    close(job->sock);
    close(job->file);
    close(job->wake);
    napi_delete_reference(env, job->callback);
    job->done = 1;
    job->refs = 1; /* the handle's finalizer frees it */
    return fail(env, "send-file: cannot start a thread");
  }
  return handle;
}

/* cancel(handle): ends the transfer early; its callback then gets ECANCELED (or its own result,
 * when it finished first). A no-op once the callback has run. */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  job_t *job;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_external(env, argv[0], (void **)&job) != napi_ok) {
    napi_throw_type_error(env, NULL, "cancel(handle)");
    return NULL;
  }
  if (!job->done) {
    uint64_t one = 1;
    ssize_t ignored = write(job->wake, &one, sizeof one);
    (void)ignored;
  }
  return NULL;
}

static void finalize_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t *inst = calloc(1, sizeof *inst);
  napi_value name;
  if (inst == NULL || napi_create_string_utf8(env, "pullthrough send-file", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver, &inst->tsfn) != napi_ok ||
      napi_unref_threadsafe_function(env, inst->tsfn) != napi_ok || napi_set_instance_data(env, inst, finalize_instance, NULL) != napi_ok) {
    free(inst);
    return NULL;
  }
  const napi_property_descriptor props[] = {
      {"sendFile", NULL, js_send_file, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

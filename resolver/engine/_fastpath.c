/* Hearth's optional UDP accelerator: the cache-hit loop of resolver/engine/listener.py in C.
 *
 * UdpBatch(fd, batch).serve(states, generation, querylog, stats) reads up to `batch` datagrams with one
 * recvmmsg(2), answers each plain cache hit exactly as Pipeline.answer_cached does (same checks, same
 * side effects: entry.hits, stats.cache_hits, one (now, client, entry) tuple in the query log's ring),
 * sends all those replies with one sendmmsg(2), and returns the datagrams it did not answer as a list of
 * (data, address) for the Python path, with the address in the form socket.recvfrom gives.
 *
 * A datagram is answered here only when every check passes before anything is changed; anything else
 * (a new or rate-limited client, a MAC forwarder's query, no alias, an expired or re-checked entry, a TTL
 * second that needs re-patching, truncation, a due prefetch) goes to Python untouched, which answers it
 * the same way it always did. Built by pip when a compiler is there (setup.py, optional); without it the
 * pure-Python UdpReader runs (HEARTH_NO_ACCEL=1 forces that).
 *
 * reply_parts(...) is wire.reply_parts in C: an upstream reply to a cache entry's parts in one pass (the
 * fetcher's miss path); it returns None wherever the Python code would decline or raise, and both give the
 * same result for every input (tests/engine/test_reply_parts.py).
 *
 * The miss path's steps, each the same as its Python twin (tests/engine/test_miss_twins.py): checked_question,
 * upstream_query_for (IDs from getentropy), match_replies (an upstream batch to its waiters), reply_entry and
 * derive (a CacheEntry made from its slots; not tracked by the cyclic collector, see untrack_entry), entry_reply
 * (CacheEntry.reply) and cache_put (AnswerCache.put).
 *
 * query_rows(batch, wall, names) is querylog.query_rows in C: the query log's ring entries as the store's rows,
 * in the writer thread (key_name, summarise_answers and summarise_entry are its steps, also callable); the same
 * rows, texts and errors-as-"?" as the Python code (tests/engine/test_querylog_texts.py). */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#define SLOT 65536        /* bytes per datagram buffer: UDP's largest, as recvfrom(65535) */
#define MAX_BATCH 1024

static PyObject *s_tokens, *s_allowed, *s_view, *s_via, *s_aliases, *s_expires, *s_gen, *s_stored, *s_age,
    *s_prefetch_at, *s_synthesized, *s_head, *s_patched, *s_hits, *s_cache_hits, *s_config, *s_enabled, *s_ring,
    *s_maxlen, *s_append, *s_dropped, *s_key, *s_tail, *s_summary, *s_rcode, *s_reason,
    *s_empty, *s_zero;

typedef struct {
    PyObject_HEAD
    int fd;
    int batch;
    char *inbuf;
    char *outbuf;
    struct mmsghdr *in;
    struct iovec *in_iov;
    struct sockaddr_storage *in_addr;
    struct mmsghdr *out;
    struct iovec *out_iov;
    Py_ssize_t *out_of; /* which received datagram each reply answers */
    unsigned long long received, answered, send_dropped;
} UdpBatch;

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* the clock time.monotonic() reads on Linux */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void UdpBatch_dealloc(UdpBatch *self) {
    free(self->inbuf);
    free(self->outbuf);
    free(self->in);
    free(self->in_iov);
    free(self->in_addr);
    free(self->out);
    free(self->out_iov);
    free(self->out_of);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int UdpBatch_init(UdpBatch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "batch", NULL};
    int fd, batch = 64;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|i", kwlist, &fd, &batch))
        return -1;
    if (fd < 0 || batch < 1 || batch > MAX_BATCH) {
        PyErr_SetString(PyExc_ValueError, "fd must be >= 0 and batch between 1 and 1024");
        return -1;
    }
    if (self->in != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "UdpBatch already initialised");
        return -1;
    }
    self->fd = fd;
    self->batch = batch;
    /* pages of the buffers are only touched as datagrams land in them */
    self->inbuf = malloc((size_t)batch * SLOT);
    self->outbuf = malloc((size_t)batch * SLOT);
    self->in = calloc(batch, sizeof(struct mmsghdr));
    self->in_iov = calloc(batch, sizeof(struct iovec));
    self->in_addr = calloc(batch, sizeof(struct sockaddr_storage));
    self->out = calloc(batch, sizeof(struct mmsghdr));
    self->out_iov = calloc(batch, sizeof(struct iovec));
    self->out_of = calloc(batch, sizeof(Py_ssize_t));
    if (!self->inbuf || !self->outbuf || !self->in || !self->in_iov || !self->in_addr || !self->out ||
        !self->out_iov || !self->out_of) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* A tuple of ``n`` new references, which it takes over (Py_BuildValue parses its format on every call): NULL,
 * with every reference released, if any of them is NULL or the tuple cannot be made. */
static PyObject *tuple_of(Py_ssize_t n, PyObject **items) {
    PyObject *t = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    if ((t = PyTuple_New(n)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, items[i]);
    return t;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* The address as socket.recvfrom gives it: (host, port) or (host, port, flowinfo, scope_id). */
static PyObject *address_tuple(const struct sockaddr_storage *ss, PyObject *host) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        Py_INCREF(host);
        PyObject *items[2] = {host, PyLong_FromLong((long)ntohs(a->sin_port))};
        return tuple_of(2, items);
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    return Py_BuildValue("OiII", host, (int)ntohs(a->sin6_port), (unsigned int)ntohl(a->sin6_flowinfo),
                         (unsigned int)a->sin6_scope_id);
}

static PyObject *host_string(const struct sockaddr_storage *ss) {
    char text[INET6_ADDRSTRLEN];
    const void *raw = ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                                : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (inet_ntop(ss->ss_family, raw, text, sizeof(text)) == NULL) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return PyUnicode_FromString(text);
}

static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* attribute as a C double / long; -1 with an exception set on failure */
static int attr_double(PyObject *o, PyObject *name, double *out) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int attr_long(PyObject *o, PyObject *name, long *out) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int attr_true(PyObject *o, PyObject *name) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* The client's alias table when its cached answers may be served here (a known client, not rate
 * limited, allowed, identified, and not a forwarder's query naming a MAC); NULL (no exception) when not. */
static PyObject *client_aliases(PyObject *states, PyObject *host, const unsigned char *data) {
    PyObject *st = PyDict_GetItemWithError(states, host); /* borrowed */
    if (st == NULL)
        return NULL;
    double tokens;
    if (attr_double(st, s_tokens, &tokens) < 0)
        return NULL;
    if (tokens >= 0)
        return NULL;
    int allowed = attr_true(st, s_allowed);
    if (allowed <= 0)
        return NULL;
    PyObject *view = PyObject_GetAttr(st, s_view);
    if (view == NULL)
        return NULL;
    if (view == Py_None) {
        Py_DECREF(view);
        return NULL;
    }
    if (data[10] || data[11]) {
        int via = attr_true(st, s_via);
        if (via != 0) {
            Py_DECREF(view);
            return NULL;
        }
    }
    PyObject *aliases = PyObject_GetAttr(view, s_aliases);
    Py_DECREF(view);
    if (aliases != NULL && !PyDict_Check(aliases)) {
        Py_DECREF(aliases);
        return NULL;
    }
    return aliases;
}

/* Try to answer datagram `data` (n bytes) from `aliases`. Returns the reply length written to `out`,
 * 0 when Python must answer it (nothing changed), -1 on an error. On success `*entry_out` is a new
 * reference to the entry (its side effects are the caller's). */
static Py_ssize_t try_hit(PyObject *aliases, const unsigned char *data, Py_ssize_t n, double now, long generation,
                          char *out, PyObject **entry_out) {
    if (n < 17)
        return 0;
    PyObject *key = PyBytes_FromStringAndSize((const char *)data + 2, n - 2);
    if (key == NULL)
        return -1;
    PyObject *hit = PyDict_GetItemWithError(aliases, key); /* borrowed */
    Py_DECREF(key);
    if (hit == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 3)
        return 0;
    PyObject *entry = PyTuple_GET_ITEM(hit, 0);
    Py_ssize_t qend = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 1));
    Py_ssize_t limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 2));
    if ((qend == -1 || limit == -1) && PyErr_Occurred())
        return -1;
    if (qend < 12 || qend > n)
        return 0;
    double expires, stored, prefetch_at;
    long gen, age;
    if (attr_double(entry, s_expires, &expires) < 0 || attr_long(entry, s_gen, &gen) < 0)
        return -1;
    if (now >= expires || gen != generation)
        return 0;
    if (attr_double(entry, s_stored, &stored) < 0 || attr_long(entry, s_age, &age) < 0)
        return -1;
    if ((long)(now - stored) != age)
        return 0; /* a new second: Python re-patches the TTLs */
    if (attr_double(entry, s_prefetch_at, &prefetch_at) < 0)
        return -1;
    if (now >= prefetch_at) {
        int synthesized = attr_true(entry, s_synthesized);
        if (synthesized < 0)
            return -1;
        if (!synthesized)
            return 0; /* Python starts the prefetch */
    }
    PyObject *head = PyObject_GetAttr(entry, s_head);
    if (head == NULL)
        return -1;
    PyObject *patched = PyObject_GetAttr(entry, s_patched);
    if (patched == NULL) {
        Py_DECREF(head);
        return -1;
    }
    Py_ssize_t len = 0;
    if (PyBytes_Check(head) && PyBytes_GET_SIZE(head) == 10 && PyBytes_Check(patched)) {
        len = qend + PyBytes_GET_SIZE(patched);
        if (len > limit || len > SLOT)
            len = 0; /* truncation: Python */
        else {
            memcpy(out, data, 2);
            memcpy(out + 2, PyBytes_AS_STRING(head), 10);
            memcpy(out + 12, data + 12, qend - 12);
            memcpy(out + qend, PyBytes_AS_STRING(patched), PyBytes_GET_SIZE(patched));
        }
    }
    Py_DECREF(head);
    Py_DECREF(patched);
    if (len > 0) {
        Py_INCREF(entry);
        *entry_out = entry;
    }
    return len;
}

/* entry.hits += 1; the query log's log_hit(now, client, entry) */
static int commit_hit(PyObject *entry, PyObject *host, double now, PyObject *querylog, PyObject *ring,
                      PyObject *append, Py_ssize_t maxlen) {
    long hits;
    if (attr_long(entry, s_hits, &hits) < 0)
        return -1;
    PyObject *v = PyLong_FromLong(hits + 1);
    if (v == NULL || PyObject_SetAttr(entry, s_hits, v) < 0) {
        Py_XDECREF(v);
        return -1;
    }
    Py_DECREF(v);
    if (append == NULL)
        return 0; /* query log off */
    if (maxlen >= 0 && PyObject_Length(ring) == maxlen) {
        long dropped;
        if (attr_long(querylog, s_dropped, &dropped) < 0)
            return -1;
        PyObject *d = PyLong_FromLong(dropped + 1);
        if (d == NULL || PyObject_SetAttr(querylog, s_dropped, d) < 0) {
            Py_XDECREF(d);
            return -1;
        }
        Py_DECREF(d);
    }
    PyObject *stamp = PyFloat_FromDouble(now);
    if (stamp == NULL)
        return -1;
    PyObject *item = PyTuple_Pack(3, stamp, host, entry);
    Py_DECREF(stamp);
    if (item == NULL)
        return -1;
    PyObject *r = PyObject_CallOneArg(append, item);
    Py_DECREF(item);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* o.name += delta for an int attribute; the new value in *now */
static int attr_add(PyObject *o, PyObject *name, long delta, long *now) {
    long v;
    if (attr_long(o, name, &v) < 0)
        return -1;
    PyObject *n = PyLong_FromLong(v + delta);
    if (n == NULL)
        return -1;
    int r = PyObject_SetAttr(o, name, n);
    Py_DECREF(n);
    if (now != NULL)
        *now = v + delta;
    return r;
}

static int add_count(PyObject *o, PyObject *name, long n) {
    return n == 0 ? 0 : attr_add(o, name, n, NULL);
}

/* send replies [0, count) with sendmmsg; a reply the socket refuses is dropped and counted (as
 * UdpReader does on OSError) */
static void send_all(UdpBatch *self, int count) {
    int done = 0;
    while (done < count) {
        int r = sendmmsg(self->fd, self->out + done, count - done, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            self->send_dropped++;
            done++;
        } else {
            done += r;
            if (r == 0)
                break;
        }
    }
}

static PyObject *UdpBatch_serve(UdpBatch *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "serve(states, generation, querylog, stats, clock)");
        return NULL;
    }
    PyObject *states = args[0], *querylog = args[2], *stats = args[3];
    PyObject *clock = args[4] == Py_None ? NULL : args[4]; /* None: CLOCK_MONOTONIC, as time.monotonic */
    long generation = PyLong_AsLong(args[1]);
    if (generation == -1 && PyErr_Occurred())
        return NULL;
    if (!PyDict_Check(states)) {
        PyErr_SetString(PyExc_TypeError, "states must be a dict");
        return NULL;
    }
    int batch = self->batch;
    for (int i = 0; i < batch; i++) {
        self->in_iov[i].iov_base = self->inbuf + (size_t)i * SLOT;
        self->in_iov[i].iov_len = SLOT - 1; /* 65535, as recvfrom(UDP_MAX) */
        memset(&self->in[i].msg_hdr, 0, sizeof(struct msghdr));
        self->in[i].msg_hdr.msg_iov = &self->in_iov[i];
        self->in[i].msg_hdr.msg_iovlen = 1;
        self->in[i].msg_hdr.msg_name = &self->in_addr[i];
        self->in[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int got = -1;
    for (int tries = 0; tries < batch; tries++) {
        got = recvmmsg(self->fd, self->in, batch, MSG_DONTWAIT, NULL);
        if (got >= 0 || (errno != EINTR && errno != ECONNREFUSED && errno != EHOSTUNREACH &&
                         errno != ENETUNREACH && errno != EPERM))
            break; /* an ICMP error queued for an earlier reply: read again, as UdpReader does */
    }
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    if (got <= 0)
        return rest; /* EAGAIN, or an error Python would ignore too */
    self->received += got;

    PyObject *ring = NULL, *append = NULL;
    Py_ssize_t maxlen = -1;
    int enabled = 0;
    PyObject *config = PyObject_GetAttr(querylog, s_config);
    if (config == NULL)
        goto fail;
    enabled = attr_true(config, s_enabled);
    Py_DECREF(config);
    if (enabled < 0)
        goto fail;
    if (enabled) {
        ring = PyObject_GetAttr(querylog, s_ring);
        if (ring == NULL)
            goto fail;
        append = PyObject_GetAttr(ring, s_append);
        if (append == NULL)
            goto fail;
        PyObject *ml = PyObject_GetAttr(ring, s_maxlen);
        if (ml == NULL)
            goto fail;
        if (ml != Py_None)
            maxlen = PyLong_AsSsize_t(ml);
        Py_DECREF(ml);
        if (maxlen == -1 && PyErr_Occurred())
            goto fail;
    }

    PyObject *host = NULL, *aliases = NULL; /* the last client's, reused while it repeats */
    const struct sockaddr_storage *last = NULL;
    int replies = 0;
    long answered = 0;
    for (int i = 0; i < got; i++) {
        const struct sockaddr_storage *ss = &self->in_addr[i];
        const unsigned char *data = (const unsigned char *)self->in_iov[i].iov_base;
        Py_ssize_t n = self->in[i].msg_len;
        if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
            continue; /* nothing to answer to */
        if (last == NULL || !same_host(last, ss)) {
            Py_CLEAR(host);
            Py_CLEAR(aliases);
            host = host_string(ss);
            if (host == NULL)
                goto fail_loop;
            last = ss;
        }
        Py_ssize_t len = 0;
        PyObject *entry = NULL;
        double now;
        if (clock == NULL)
            now = monotonic_now();
        else {
            PyObject *t = PyObject_CallNoArgs(clock);
            if (t == NULL)
                goto fail_loop;
            now = PyFloat_AsDouble(t);
            Py_DECREF(t);
            if (now == -1.0 && PyErr_Occurred())
                goto fail_loop;
        }
        if (n >= 12) {
            /* the MAC-forwarder check depends on the packet's ARCOUNT: look the client up per packet
             * when it is non-zero, otherwise once per run of the same client */
            PyObject *al;
            if (data[10] || data[11]) {
                al = client_aliases(states, host, data);
            } else {
                if (aliases == NULL)
                    aliases = client_aliases(states, host, data);
                Py_XINCREF(aliases);
                al = aliases;
            }
            if (al == NULL && PyErr_Occurred())
                goto fail_loop;
            if (al != NULL) {
                char *out = self->outbuf + (size_t)replies * SLOT;
                len = try_hit(al, data, n, now, generation, out, &entry);
                Py_DECREF(al);
                if (len < 0)
                    goto fail_loop;
            }
        }
        if (len > 0) {
            int r = commit_hit(entry, host, now, querylog, ring, append, maxlen);
            Py_DECREF(entry);
            if (r < 0)
                goto fail_loop;
            memset(&self->out[replies].msg_hdr, 0, sizeof(struct msghdr));
            self->out_iov[replies].iov_base = self->outbuf + (size_t)replies * SLOT;
            self->out_iov[replies].iov_len = (size_t)len;
            self->out[replies].msg_hdr.msg_iov = &self->out_iov[replies];
            self->out[replies].msg_hdr.msg_iovlen = 1;
            self->out[replies].msg_hdr.msg_name = (void *)ss;
            self->out[replies].msg_hdr.msg_namelen =
                ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
            self->out_of[replies] = i;
            replies++;
            answered++;
            continue;
        }
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, n);
        PyObject *addr = bytes ? address_tuple(ss, host) : NULL;
        PyObject *pair = addr ? PyTuple_Pack(2, bytes, addr) : NULL;
        Py_XDECREF(bytes);
        Py_XDECREF(addr);
        if (pair == NULL || PyList_Append(rest, pair) < 0) {
            Py_XDECREF(pair);
            goto fail_loop;
        }
        Py_DECREF(pair);
    }
    Py_CLEAR(host);
    Py_CLEAR(aliases);
    send_all(self, replies);
    self->answered += answered;
    Py_XDECREF(append);
    Py_XDECREF(ring);
    if (add_count(stats, s_cache_hits, answered) < 0) {
        Py_DECREF(rest);
        return NULL;
    }
    return rest;

fail_loop:
    Py_XDECREF(host);
    Py_XDECREF(aliases);
    send_all(self, replies); /* what was answered (and counted) goes out */
    {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (add_count(stats, s_cache_hits, answered) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
fail:
    Py_XDECREF(append);
    Py_XDECREF(ring);
    Py_DECREF(rest);
    return NULL;
}

static PyObject *UdpBatch_counters(UdpBatch *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{s:K,s:K,s:K}", "received", self->received, "answered", self->answered, "send_dropped",
                         self->send_dropped);
}

static PyMethodDef UdpBatch_methods[] = {
    {"serve", (PyCFunction)(void (*)(void))UdpBatch_serve, METH_FASTCALL,
     "serve(states, generation, querylog, stats, clock) -> [(data, address), ...]: read one batch, answer its "
     "cache hits, return the rest for Python (clock None: CLOCK_MONOTONIC, else called per datagram)"},
    {"counters", (PyCFunction)UdpBatch_counters, METH_NOARGS, "datagrams received, answered here, replies dropped"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject UdpBatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resolver.engine._fastpath.UdpBatch",
    .tp_basicsize = sizeof(UdpBatch),
    .tp_dealloc = (destructor)UdpBatch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A UDP socket's batch reader: cache hits answered in C, the rest handed back.",
    .tp_methods = UdpBatch_methods,
    .tp_init = (initproc)UdpBatch_init,
    .tp_new = PyType_GenericNew,
};

/* ------------------------------------------------------------------ plain batches, for any UDP socket */

static int parse_address(PyObject *addr, struct sockaddr_storage *ss, socklen_t *len) {
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) {
        PyErr_SetString(PyExc_TypeError, "address must be (host, port[, flowinfo, scope_id])");
        return -1;
    }
    if (!PyArg_ParseTuple(addr, "si|II", &host, &port, &flowinfo, &scope_id))
        return -1;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((unsigned short)port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((unsigned short)port);
        a6->sin6_flowinfo = htonl(flowinfo);
        a6->sin6_scope_id = scope_id;
        *len = sizeof(*a6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
    return -1;
}

#define SEND_CHUNK 64

static void release(PyObject **keep, int *kept) {
    while (*kept > 0)
        Py_DECREF(keep[--*kept]);
}

/* send_batch(fd, items) -> [(index, errno), ...]: items are bytes (a connected socket) or (bytes, address);
 * one sendmmsg per 64; the datagrams the socket refused are returned, the others were sent. */
static PyObject *fp_send_batch(PyObject *Py_UNUSED(mod), PyObject *args) {
    int fd;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iO!", &fd, &PyList_Type, &items))
        return NULL;
    PyObject *failed = PyList_New(0);
    if (failed == NULL)
        return NULL;
    struct mmsghdr msgs[SEND_CHUNK];
    struct iovec iov[SEND_CHUNK];
    struct sockaddr_storage addrs[SEND_CHUNK];
    PyObject *keep[SEND_CHUNK];
    int kept = 0;
    Py_ssize_t total = PyList_GET_SIZE(items);
    for (Py_ssize_t base = 0; base < total; base += SEND_CHUNK) {
        int count = (int)(total - base < SEND_CHUNK ? total - base : SEND_CHUNK);
        release(keep, &kept);
        for (int i = 0; i < count; i++) {
            PyObject *item = PyList_GET_ITEM(items, base + i), *data = item;
            memset(&msgs[i].msg_hdr, 0, sizeof(struct msghdr));
            if (PyTuple_Check(item)) {
                socklen_t len;
                if (PyTuple_GET_SIZE(item) != 2) {
                    PyErr_SetString(PyExc_TypeError, "items are bytes or (bytes, address)");
                    goto fail;
                }
                data = PyTuple_GET_ITEM(item, 0);
                if (parse_address(PyTuple_GET_ITEM(item, 1), &addrs[i], &len) < 0)
                    goto fail;
                msgs[i].msg_hdr.msg_name = &addrs[i];
                msgs[i].msg_hdr.msg_namelen = len;
            }
            if (!PyBytes_Check(data)) { /* a bytearray (dnslib's pack) or another buffer: as bytes */
                data = keep[kept] = PyBytes_FromObject(data);
                if (data == NULL)
                    goto fail;
                kept++;
            }
            iov[i].iov_base = PyBytes_AS_STRING(data);
            iov[i].iov_len = (size_t)PyBytes_GET_SIZE(data);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int done = 0;
        while (done < count) {
            int r = sendmmsg(fd, msgs + done, count - done, MSG_DONTWAIT);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                PyObject *f = Py_BuildValue("(ni)", base + done, errno);
                if (f == NULL || PyList_Append(failed, f) < 0) {
                    Py_XDECREF(f);
                    goto fail;
                }
                Py_DECREF(f);
                done++;
            } else if (r == 0) {
                break;
            } else {
                done += r;
            }
        }
    }
    release(keep, &kept);
    return failed;
fail:
    release(keep, &kept);
    Py_DECREF(failed);
    return NULL;
}

/* recv_batch(fd, most) -> [bytes, ...]: up to `most` datagrams with one recvmmsg (a connected socket);
 * [] when none is waiting; OSError for an error before the first (e.g. ICMP port unreachable). */
static PyObject *fp_recv_batch(PyObject *Py_UNUSED(mod), PyObject *args) {
    int fd, most;
    if (!PyArg_ParseTuple(args, "ii", &fd, &most))
        return NULL;
    if (most < 1 || most > 256) {
        PyErr_SetString(PyExc_ValueError, "most must be between 1 and 256");
        return NULL;
    }
    static char *buf = NULL;   /* one buffer per process: called with the GIL held */
    if (buf == NULL && (buf = malloc((size_t)256 * SLOT)) == NULL)
        return PyErr_NoMemory();
    struct mmsghdr msgs[256];
    struct iovec iov[256];
    for (int i = 0; i < most; i++) {
        iov[i].iov_base = buf + (size_t)i * SLOT;
        iov[i].iov_len = SLOT - 1;
        memset(&msgs[i].msg_hdr, 0, sizeof(struct msghdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int got;
    do {
        got = recvmmsg(fd, msgs, most, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(got);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < got; i++) {
        PyObject *b = PyBytes_FromStringAndSize(iov[i].iov_base, msgs[i].msg_len);
        if (b == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, b);
    }
    return out;
}

/* ------------------------------------------------------------------ upstream replies -> cache entry parts */

/* The same walk as wire.skip_name: the offset past the (possibly compressed) name at i; -1 when Python would
 * raise (IndexError: cut short; ValueError: a reserved label type). A pointer's second byte is not read. */
static Py_ssize_t walk_name(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        if (i < 0 || i >= n)
            return -1;
        unsigned char ln = p[i];
        if (ln == 0)
            return i + 1;
        if (ln >= 0xC0)
            return i + 2;
        if (ln > 63)
            return -1;
        i += ln + 1;
    }
}

static unsigned int rd16(const unsigned char *p) { return (unsigned int)p[0] << 8 | p[1]; }
static unsigned long rd32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}
static void wr32(unsigned char *p, unsigned long v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* wire.read_wire_name: the name at i as a lower-case uncompressed wire name; NULL without an exception when
 * Python would raise (loop, bad label, too long, cut short). */
static PyObject *wire_name_at(const unsigned char *p, Py_ssize_t n, Py_ssize_t i) {
    unsigned char out[256 + 64];
    Py_ssize_t len = 0;
    int hops = 0;
    for (;;) {
        if (i < 0 || i >= n)
            return NULL;
        unsigned char ln = p[i];
        if (ln == 0) {
            out[len++] = 0;
            for (Py_ssize_t k = 0; k < len; k++)
                if (out[k] >= 'A' && out[k] <= 'Z')
                    out[k] += 32;
            return PyBytes_FromStringAndSize((const char *)out, len);
        }
        if (ln >= 0xC0) {
            if (++hops > 32)
                return NULL;
            if (i + 1 >= n)
                return NULL;
            i = (Py_ssize_t)(ln & 0x3F) << 8 | p[i + 1];
            continue;
        }
        if (ln > 63 || i + 1 + ln > n)
            return NULL;
        memcpy(out + len, p + i, (size_t)ln + 1);
        len += ln + 1;
        if (len > 254)
            return NULL;
        i += ln + 1;
    }
}

/* wire.cname_targets: CNAME targets of the answer section, in order; what was read before any damage. */
static PyObject *cname_walk(const unsigned char *p, Py_ssize_t n) {
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    if (n >= 8) {
        unsigned int an = rd16(p + 6);
        Py_ssize_t i = walk_name(p, n, 12);
        if (i >= 0) {
            i += 4;
            for (unsigned int k = 0; k < an; k++) {
                i = walk_name(p, n, i);
                if (i < 0 || i + 10 > n)
                    break;
                unsigned int rtype = rd16(p + i), rdlen = rd16(p + i + 8);
                if (rtype == 5) {
                    PyObject *t = wire_name_at(p, n, i + 10);
                    if (t == NULL) {
                        if (PyErr_Occurred())
                            goto fail;
                        break;
                    }
                    int r = PyList_Append(found, t);
                    Py_DECREF(t);
                    if (r < 0)
                        goto fail;
                }
                i += 10 + rdlen;
            }
        }
    }
    PyObject *out = PyList_AsTuple(found);
    Py_DECREF(found);
    return out;
fail:
    Py_DECREF(found);
    return NULL;
}

/* int(min(max(t, lo), hi)) as Python computes it for an int t and float (or int) bounds; -1: out of u32 */
static long long clamp_ttl(unsigned long t, double lo, double hi) {
    double x = (lo > (double)t) ? lo : (double)t;
    if (hi < x)
        x = hi;
    if (!(x < 4294967296.0) || x < 0)
        return -1;
    return (long long)x;
}

#define RR_STACK 64

/* reply_parts(reply, key, edns_size, min_ttl, max_ttl, negative_max_ttl) -> (head, tail, offsets, ttls, ttl,
 * rcode, cnames) or None: wire.reply_parts in C (see there); None whenever the Python code would raise. */
static PyObject *fp_reply_parts(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "reply_parts(reply: bytes, key: bytes, edns_size, min_ttl, max_ttl, "
                                         "negative_max_ttl)");
        return NULL;
    }
    const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *key = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]), kl = PyBytes_GET_SIZE(args[1]);
    long edns_size = PyLong_AsLong(args[2]);
    double lo = PyFloat_AsDouble(args[3]), hi = PyFloat_AsDouble(args[4]), neg_hi = PyFloat_AsDouble(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (kl < 6 || edns_size < 0 || edns_size > 65535)
        Py_RETURN_NONE;
    Py_ssize_t ql = kl - 1, qend = 12 + ql;
    unsigned char flags = key[kl - 1];
    if (n < qend || !(r[2] & 0x80) || r[4] != 0 || r[5] != 1)
        Py_RETURN_NONE;
    for (Py_ssize_t j = 12; j < qend - 4; j++) {
        unsigned char c = r[j];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != key[j - 12])
            Py_RETURN_NONE;
    }
    if (memcmp(r + qend - 4, key + ql - 4, 4) != 0)
        Py_RETURN_NONE;
    unsigned int an = rd16(r + 6), ns = rd16(r + 8), ar = rd16(r + 10);
    unsigned int total = an + ns + ar;
    Py_ssize_t offs_stack[RR_STACK];
    unsigned long ttls_stack[RR_STACK];
    Py_ssize_t *offs = offs_stack;
    unsigned long *ttls = ttls_stack;
    if (total > RR_STACK) {
        offs = PyMem_Malloc(sizeof(Py_ssize_t) * total);
        ttls = PyMem_Malloc(sizeof(unsigned long) * total);
        if (offs == NULL || ttls == NULL) {
            PyMem_Free(offs);
            PyMem_Free(ttls);
            return PyErr_NoMemory();
        }
    }
    PyObject *result = NULL;
    unsigned char *packed = NULL;
    Py_ssize_t count = 0, opt_start = -1, i = qend;
    long long negative = -1;
    for (unsigned int idx = 0; idx < total; idx++) {
        Py_ssize_t start = i;
        i = walk_name(r, n, i);
        if (i < 0 || i + 10 > n)
            goto odd;
        unsigned int rtype = rd16(r + i), rdlen = rd16(r + i + 8);
        unsigned long ttl = rd32(r + i + 4);
        if (rtype == 41) {
            if (opt_start >= 0)
                goto odd;
            opt_start = start;
        } else {
            if (opt_start >= 0)
                goto odd;
            offs[count] = i + 4;
            ttls[count] = ttl;
            count++;
            if (rtype == 6 && negative < 0 && idx >= an && idx < an + ns && rdlen >= 22) {
                Py_ssize_t m = i + 10 + rdlen - 4;
                if (m + 4 > n)
                    goto odd;
                unsigned long minimum = rd32(r + m);
                negative = (long long)(ttl < minimum ? ttl : minimum);
            }
        }
        i += 10 + rdlen;
    }
    if (i > n)
        goto odd;
    Py_ssize_t body_end = opt_start >= 0 ? opt_start : i;
    int edns = (flags & 0x04) != 0, dnssec_ok = (flags & 0x08) != 0;
    long arcount = (long)ar - (opt_start >= 0 ? 1 : 0) + (edns ? 1 : 0);
    if (arcount < 0 || arcount > 65535)
        goto odd; /* (an OPT in the answer section of a reply to a client without EDNS: -1) */
    int rcode = r[3] & 0x0F;
    long long ttl = 0;
    long long clamped[RR_STACK], *cl = clamped;
    if (count > RR_STACK) {
        cl = PyMem_Malloc(sizeof(long long) * count);
        if (cl == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    for (Py_ssize_t k = 0; k < count; k++)
        cl[k] = (long long)ttls[k];
    if (rcode == 0 && an != 0) {
        if (count == 0)
            goto odd_cl;
        for (Py_ssize_t k = 0; k < count; k++) {
            cl[k] = clamp_ttl(ttls[k], lo, hi);
            if (cl[k] < 0)
                goto odd_cl;
            if (k == 0 || cl[k] < ttl)
                ttl = cl[k];
        }
    } else if ((rcode == 0 || rcode == 3) && negative >= 0) {
        double x = neg_hi < (double)negative ? neg_hi : (double)negative;
        if (!(x < 4294967296.0) || x < 0)
            goto odd_cl;
        ttl = (long long)x;
        for (Py_ssize_t k = 0; k < count; k++)
            if (ttl < cl[k])
                cl[k] = ttl;
    }
    Py_ssize_t plen = qend + (body_end - qend) + (edns ? 11 : 0);
    packed = PyMem_Malloc((size_t)plen);
    if (packed == NULL) {
        PyErr_NoMemory();
        goto done_cl;
    }
    packed[0] = packed[1] = 0;
    packed[2] = 0x80 | (flags & 0x01);
    packed[3] = 0x80 | (dnssec_ok ? (r[3] & 0x20) : 0) | ((flags & 0x02) ? 0x10 : 0) | (r[3] & 0x0F);
    packed[4] = 0;
    packed[5] = 1;
    packed[6] = (unsigned char)(an >> 8);
    packed[7] = (unsigned char)an;
    packed[8] = (unsigned char)(ns >> 8);
    packed[9] = (unsigned char)ns;
    packed[10] = (unsigned char)(arcount >> 8);
    packed[11] = (unsigned char)arcount;
    memcpy(packed + 12, key, (size_t)ql);
    memcpy(packed + qend, r + qend, (size_t)(body_end - qend));
    if (edns) {
        unsigned char *o = packed + body_end;
        o[0] = 0, o[1] = 0, o[2] = 0x29;
        o[3] = (unsigned char)(edns_size >> 8), o[4] = (unsigned char)edns_size;
        o[5] = 0, o[6] = 0;
        o[7] = dnssec_ok ? 0x80 : 0, o[8] = 0;
        o[9] = 0, o[10] = 0;
    }
    PyObject *cnames;
    if (rcode == 0 && an != 0 && memmem(packed, (size_t)plen, "\x00\x05\x00\x01", 4) != NULL)
        cnames = cname_walk(packed, plen);
    else
        cnames = PyTuple_New(0);
    if (cnames == NULL)
        goto done_cl;
    for (Py_ssize_t k = 0; k < count; k++)
        wr32(packed + offs[k], (unsigned long)cl[k]);
    PyObject *offsets = PyTuple_New(count), *ttl_list = PyTuple_New(count);
    if (offsets == NULL || ttl_list == NULL)
        goto build_fail;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *o = PyLong_FromSsize_t(offs[k] - qend), *t = PyLong_FromLongLong(cl[k]);
        if (o == NULL || t == NULL) {
            Py_XDECREF(o);
            Py_XDECREF(t);
            goto build_fail;
        }
        PyTuple_SET_ITEM(offsets, k, o);
        PyTuple_SET_ITEM(ttl_list, k, t);
    }
    /* numbers and names only, no cycle possible: untracked now rather than at the collector's next pass (which
     * untracks such tuples itself), as they live on in a cache entry */
    PyObject_GC_UnTrack(offsets);
    PyObject_GC_UnTrack(ttl_list);
    PyObject_GC_UnTrack(cnames);
    PyObject *items[7] = {PyBytes_FromStringAndSize((const char *)packed + 2, 10),
                          PyBytes_FromStringAndSize((const char *)packed + qend, plen - qend), offsets, ttl_list,
                          PyLong_FromLongLong((long long)ttl), PyLong_FromLong((long)rcode), cnames};
    result = tuple_of(7, items); /* (head, tail, offsets, ttls, ttl, rcode, cnames), all taken over */
    goto done_cl;
build_fail:
    Py_XDECREF(offsets);
    Py_XDECREF(ttl_list);
    Py_DECREF(cnames);
    goto done_cl;
odd_cl:
    result = Py_None;
    Py_INCREF(result);
done_cl:
    if (cl != clamped)
        PyMem_Free(cl);
    goto done;
odd:
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(packed);
    if (offs != offs_stack) {
        PyMem_Free(offs);
        PyMem_Free(ttls);
    }
    return result;
}

static PyObject *fp_cname_targets(PyObject *Py_UNUSED(mod), PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "cname_targets(packet: bytes)");
        return NULL;
    }
    return cname_walk((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
}

/* wire.lookup_key in C: (key, qend, limit) of a plain query for a cache lookup, or None; the same result for
 * every input (tests/engine/test_lookup_key.py). */
static PyObject *fp_lookup_key(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "lookup_key(data: bytes, edns_cap: int)");
        return NULL;
    }
    long cap = PyLong_AsLong(args[1]);
    if (cap == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (n < 17 || (d[2] & 0xF8) || memcmp(d + 4, "\x00\x01\x00\x00\x00\x00", 6) != 0 || d[10])
        Py_RETURN_NONE;
    const unsigned char *zp = memchr(d + 12, 0, (size_t)(n - 12));
    if (zp == NULL)
        Py_RETURN_NONE;
    Py_ssize_t z = zp - d, qend = z + 5;
    if (qend > n)
        Py_RETURN_NONE;
    unsigned int flags = (d[2] & 0x01) | ((d[3] & 0x10) >> 3);
    long limit = 512;
    if (d[11] == 0) {
        if (qend != n)
            Py_RETURN_NONE;
    } else {
        if (d[11] != 1 || n < qend + 11 || d[qend] || d[qend + 1] || d[qend + 2] != 0x29 || d[qend + 6] ||
            qend + 11 + ((Py_ssize_t)d[qend + 9] << 8 | d[qend + 10]) != n)
            Py_RETURN_NONE;
        long udp = (long)d[qend + 3] << 8 | d[qend + 4];
        flags |= 0x04 | ((d[qend + 7] & 0x80) ? 0x08 : 0);
        limit = udp < 512 ? 512 : (udp > cap ? cap : udp);
    }
    Py_ssize_t klen = qend - 12 + 1;
    PyObject *key = PyBytes_FromStringAndSize(NULL, klen);
    if (key == NULL)
        return NULL;
    unsigned char *k = (unsigned char *)PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 12; i <= z; i++) {
        unsigned char c = d[i];
        k[i - 12] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    memcpy(k + (z + 1 - 12), d + z + 1, 4);
    k[klen - 1] = (unsigned char)flags;
    PyObject *items[3] = {key, PyLong_FromSsize_t(qend), PyLong_FromLong(limit)};
    return tuple_of(3, items);
}

/* wire.checked_question in C: the Question (a namedtuple, ``qtype``) for a query whose lookup_key result ``found``
 * is known, once its question name's labels are walked and checked; None where the Python code gives None, and
 * the same IndexError for a ``found`` that does not fit ``data`` (tests/engine/test_lookup_key.py). */
static PyObject *fp_checked_question(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type) ||
        !PyBytes_Check(args[1]) || !PyTuple_Check(args[2]) || PyTuple_GET_SIZE(args[2]) != 3) {
        PyErr_SetString(PyExc_TypeError, "checked_question(Question, data: bytes, found: (key, qend, limit))");
        return NULL;
    }
    PyObject *found = args[2];
    Py_ssize_t qend = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 1));
    if (qend == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]), end = qend - 5, i = 12;
    if (end - 12 > 254)
        Py_RETURN_NONE;
    while (i < end) {
        if (i >= n) {
            PyErr_SetString(PyExc_IndexError, "index out of range");
            return NULL;
        }
        if (d[i] > 63)
            Py_RETURN_NONE; /* a compression pointer or a reserved label type in a question */
        i += d[i] + 1;
    }
    if (i != end)
        Py_RETURN_NONE; /* a zero byte inside a label: the name really ends elsewhere */
    PyTypeObject *qtype = (PyTypeObject *)args[0];
    PyObject *q = qtype->tp_alloc(qtype, 3);
    if (q == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < 3; k++) {
        PyObject *item = PyTuple_GET_ITEM(found, k);
        Py_INCREF(item);
        PyTuple_SET_ITEM(q, k, item);
    }
    return q;
}

/* The upstream query IDs: bytes from getentropy(3), a buffer at a time. */
static unsigned char id_pool[256];
static size_t id_left = 0;

static int next_query_id(unsigned char out[2]) {
    if (id_left < 2) {
        if (getentropy(id_pool, sizeof id_pool) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        id_left = sizeof id_pool;
    }
    id_left -= 2;
    out[0] = id_pool[id_left];
    out[1] = id_pool[id_left + 1];
    return 0;
}

/* answers.upstream_query_for in C: the upstreams' query for a cache key (name, type, class, flag byte): a random
 * ID (getentropy), RD, the client's CD, one OPT with our EDNS size and the client's DO; the same bytes as the Python
 * code but for the ID (tests/engine/test_miss_twins.py). */
static PyObject *fp_upstream_query_for(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0]) || PyBytes_GET_SIZE(args[0]) < 2) {
        PyErr_SetString(PyExc_TypeError, "upstream_query_for(key: bytes, edns_size: int)");
        return NULL;
    }
    long size = PyLong_AsLong(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || size > 65535) {
        PyErr_SetString(PyExc_OverflowError, "edns_size out of range");
        return NULL;
    }
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t klen = PyBytes_GET_SIZE(args[0]) - 1;
    unsigned char flags = k[klen];
    PyObject *out = PyBytes_FromStringAndSize(NULL, 12 + klen + 11);
    if (out == NULL)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    if (next_query_id(p) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    memcpy(p + 2, (flags & 0x02) ? "\x01\x10" : "\x01\x00", 2);
    memcpy(p + 4, "\x00\x01\x00\x00\x00\x00\x00\x01", 8);
    memcpy(p + 12, k, (size_t)klen);
    p += 12 + klen;
    p[0] = 0, p[1] = 0, p[2] = 0x29, p[3] = (unsigned char)(size >> 8), p[4] = (unsigned char)size;
    memcpy(p + 5, (flags & 0x08) ? "\x00\x00\x80\x00\x00\x00" : "\x00\x00\x00\x00\x00\x00", 6);
    return out;
}

/* transports.match_replies in C: hand each upstream reply of a batch to the query it answers. ``pending`` maps a
 * query ID to its waiters, each a list [question bytes, on_reply]; a reply (QR set, at least a header) goes to the
 * first waiter of its ID whose question it repeats (the name in any case, type and class exactly), which leaves
 * ``pending`` before its on_reply(reply) is called. Late, forged and malformed replies are dropped. Returns how
 * many replies were handed on; an exception from on_reply stops the batch, as in Python. */
static PyObject *fp_match_replies(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "match_replies(pending: dict, replies)");
        return NULL;
    }
    PyObject *pending = args[0];
    PyObject *seq = PySequence_Fast(args[1], "match_replies: replies must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq), matched = 0;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *data = PySequence_Fast_GET_ITEM(seq, r);
        if (!PyBytes_Check(data))
            continue;
        const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t n = PyBytes_GET_SIZE(data);
        if (n < 12 || !(d[2] & 0x80))
            continue;
        PyObject *qid = PyLong_FromLong((long)d[0] << 8 | d[1]);
        if (qid == NULL)
            goto fail;
        PyObject *waiters = PyDict_GetItemWithError(pending, qid); /* borrowed */
        if (waiters == NULL || !PyList_Check(waiters) || PyList_GET_SIZE(waiters) == 0) {
            Py_DECREF(qid);
            if (PyErr_Occurred())
                goto fail;
            continue; /* late or forged: nobody waits for this ID */
        }
        Py_ssize_t nw = PyList_GET_SIZE(waiters), hit = -1;
        for (Py_ssize_t j = 0; j < nw && hit < 0; j++) {
            PyObject *w = PyList_GET_ITEM(waiters, j);
            if (!PyList_Check(w) || PyList_GET_SIZE(w) < 2)
                continue;
            PyObject *qb = PyList_GET_ITEM(w, 0); /* bytes, or a bytearray when the caller's packet was one */
            const unsigned char *q;
            Py_ssize_t ql;
            if (PyBytes_Check(qb))
                q = (const unsigned char *)PyBytes_AS_STRING(qb), ql = PyBytes_GET_SIZE(qb);
            else if (PyByteArray_Check(qb))
                q = (const unsigned char *)PyByteArray_AS_STRING(qb), ql = PyByteArray_GET_SIZE(qb);
            else
                continue;
            Py_ssize_t end = 12 + ql;
            if (ql < 5 || n < end)
                continue;
            Py_ssize_t i = 0;
            for (; i < ql - 4; i++) {
                unsigned char c = d[12 + i];
                if (((c >= 'A' && c <= 'Z') ? c + 32 : c) != q[i])
                    break;
            }
            if (i == ql - 4 && memcmp(d + end - 4, q + ql - 4, 4) == 0)
                hit = j;
        }
        if (hit < 0) {
            Py_DECREF(qid);
            continue;
        }
        PyObject *w = PyList_GET_ITEM(waiters, hit);
        PyObject *on_reply = PyList_GET_ITEM(w, 1);
        Py_INCREF(on_reply);
        int removed = nw == 1 ? PyDict_DelItem(pending, qid) : PySequence_DelItem(waiters, hit);
        Py_DECREF(qid);
        if (removed < 0) {
            Py_DECREF(on_reply);
            goto fail;
        }
        matched++;
        PyObject *res = PyObject_CallOneArg(on_reply, data);
        Py_DECREF(on_reply);
        if (res == NULL)
            goto fail;
        Py_DECREF(res);
    }
    Py_DECREF(seq);
    return PyLong_FromSsize_t(matched);
fail:
    Py_DECREF(seq);
    return NULL;
}

/* ------------------------------------------------------------------ cache entries (the miss path) */

/* A CacheEntry's slots (resolver/engine/cache.py: __slots__), found by name in its type's member table, so C can
 * make an entry as ``CacheEntry.__new__`` + the attribute stores of from_parts and derive do. */
enum {
    E_KEY, E_HEAD, E_TAIL, E_OFFSETS, E_TTLS, E_STORED, E_EXPIRES, E_STALE_UNTIL, E_PREFETCH_AT, E_HITS, E_SEEN,
    E_AGE, E_PATCHED, E_RCODE, E_SUMMARY, E_UPSTREAM, E_REASON, E_REFRESHING, E_SYNTHESIZED, E_ALIASES, E_GEN,
    E_CNAMES, E_BASE, E_COPIES, E_MADE_BY, E_SLOTS
};
static const char *entry_slot_names[E_SLOTS] = {
    "key", "head", "tail", "offsets", "ttls", "stored", "expires", "stale_until", "prefetch_at", "hits", "seen",
    "age", "patched", "rcode", "summary", "upstream", "reason", "refreshing", "synthesized", "aliases", "gen",
    "cnames", "base", "copies", "made_by"};
static PyTypeObject *entry_type = NULL; /* the type entry_offsets describes (held, so its address is never reused) */
static Py_ssize_t entry_offsets[E_SLOTS];

static int entry_layout(PyTypeObject *type) {
    if (type == entry_type)
        return 0;
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_members == NULL || type->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "not a CacheEntry type (slots only)");
        return -1;
    }
    Py_CLEAR(entry_type);
    for (int i = 0; i < E_SLOTS; i++) {
        entry_offsets[i] = -1;
        for (PyMemberDef *m = type->tp_members; m->name != NULL; m++)
            if (strcmp(m->name, entry_slot_names[i]) == 0 && m->type == T_OBJECT_EX && !(m->flags & READONLY))
                entry_offsets[i] = m->offset;
        if (entry_offsets[i] < 0) {
            PyErr_Format(PyExc_TypeError, "not a CacheEntry type: no slot %s", entry_slot_names[i]);
            return -1;
        }
    }
    Py_INCREF(type);
    entry_type = type;
    return 0;
}

#define SLOT_OF(obj, i) (*(PyObject **)((char *)(obj) + entry_offsets[i]))

/* Store a new reference in a fresh entry's slot (empty until then). */
static void slot_set(PyObject *entry, int i, PyObject *value) {
    PyObject **p = &SLOT_OF(entry, i);
    PyObject *old = *p;
    *p = value;
    Py_XDECREF(old);
}

static void slot_copy(PyObject *entry, int i, PyObject *value) {
    Py_INCREF(value);
    slot_set(entry, i, value);
}

/* The entries made here are not tracked by the cyclic garbage collector. A miss leaves two long-lived entries in
 * the cache, and the collector's passes walked every slot of every one of them again and again as the cache grew
 * (a tenth of a miss's CPU in the engine); an entry needs no collector: its one cycle (an alias: entry -> aliases
 * -> a view's alias table -> entry) is broken by the cache whenever it drops an entry (AnswerCache._unalias), and
 * the cache lives as long as the engine. */
static void untrack_entry(PyObject *e) { PyObject_GC_UnTrack(e); }

/* A slot of an entry made by Python; NULL with AttributeError when it was never set. */
static PyObject *slot_get(PyObject *entry, int i) {
    PyObject *v = SLOT_OF(entry, i);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "'CacheEntry' object has no attribute '%s'", entry_slot_names[i]);
    return v;
}

static PyObject *s_size, *s__entries, *s__unalias, *s_seen, *s_clock, *s_evictions, *c_one_int;
static PyObject *c_empty_bytes, *c_zero_int, *c_point_nine, *c_ten, *c_empty_tuple;

/* The slots every new entry starts with (from_parts and derive alike): counters at 0, no aliases, copies, base,
 * made_by, not refreshing, generation 0, key b"". */
static void entry_defaults(PyObject *e) {
    slot_copy(e, E_KEY, c_empty_bytes);
    slot_copy(e, E_HITS, c_zero_int);
    slot_copy(e, E_SEEN, c_zero_int);
    slot_copy(e, E_AGE, c_zero_int);
    slot_copy(e, E_REFRESHING, Py_False);
    slot_copy(e, E_ALIASES, c_empty_tuple);
    slot_copy(e, E_COPIES, c_empty_tuple);
    slot_copy(e, E_GEN, c_zero_int);
    slot_copy(e, E_MADE_BY, Py_None);
}

/* cache.reply_entry in C: CacheEntry.from_parts(reply_parts(reply, key, ...), now, stale_for, upstream), or None
 * where reply_parts gives None; the same entry, slot for slot (tests/engine/test_miss_twins.py). */
static PyObject *fp_reply_entry(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "reply_entry(CacheEntry, reply, key, edns_size, min_ttl, max_ttl, "
                                         "negative_max_ttl, now, stale_for, upstream)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (entry_layout(type) < 0)
        return NULL;
    PyObject *parts = fp_reply_parts(mod, args + 1, 6);
    if (parts == NULL || parts == Py_None)
        return parts;
    PyObject *now = args[7], *stale_for = args[8], *upstream = args[9];
    PyObject *ttl = PyTuple_GET_ITEM(parts, 4), *expires = NULL, *stale_until = NULL, *prefetch_at = NULL;
    PyObject *e = NULL;
    if ((expires = PyNumber_Add(now, ttl)) == NULL || (stale_until = PyNumber_Add(expires, stale_for)) == NULL)
        goto fail;
    int long_enough = PyObject_RichCompareBool(ttl, c_ten, Py_GE);
    if (long_enough < 0)
        goto fail;
    if (long_enough) {
        PyObject *part = PyNumber_Multiply(ttl, c_point_nine);
        if (part == NULL)
            goto fail;
        prefetch_at = PyNumber_Add(now, part);
        Py_DECREF(part);
        if (prefetch_at == NULL)
            goto fail;
    } else {
        prefetch_at = expires;
        Py_INCREF(prefetch_at);
    }
    if ((e = type->tp_alloc(type, 0)) == NULL)
        goto fail;
    entry_defaults(e);
    slot_copy(e, E_HEAD, PyTuple_GET_ITEM(parts, 0));
    slot_copy(e, E_TAIL, PyTuple_GET_ITEM(parts, 1));
    slot_copy(e, E_PATCHED, PyTuple_GET_ITEM(parts, 1));
    slot_copy(e, E_OFFSETS, PyTuple_GET_ITEM(parts, 2));
    slot_copy(e, E_TTLS, PyTuple_GET_ITEM(parts, 3));
    slot_copy(e, E_RCODE, PyTuple_GET_ITEM(parts, 5));
    slot_copy(e, E_CNAMES, PyTuple_GET_ITEM(parts, 6));
    slot_copy(e, E_STORED, now);
    slot_set(e, E_EXPIRES, expires);
    slot_set(e, E_STALE_UNTIL, stale_until);
    slot_set(e, E_PREFETCH_AT, prefetch_at);
    slot_copy(e, E_SUMMARY, Py_None);
    slot_copy(e, E_REASON, Py_None);
    slot_copy(e, E_BASE, Py_None);
    slot_copy(e, E_UPSTREAM, upstream);
    slot_copy(e, E_SYNTHESIZED, Py_False);
    untrack_entry(e);
    Py_DECREF(parts);
    return e;
fail:
    Py_XDECREF(expires);
    Py_XDECREF(stale_until);
    Py_XDECREF(prefetch_at);
    Py_DECREF(parts);
    return NULL;
}

/* CacheEntry.derive in C for a view's copy made the moment the answer came (age 0; no cap, or one no TTL reaches):
 * the bytes shared, only the times set. Any other case calls the Python method, so the results are always the
 * method's (tests/engine/test_miss_twins.py). */
static PyObject *fp_derive(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "derive(entry, now, cap)");
        return NULL;
    }
    PyObject *up = args[0], *now = args[1], *cap = args[2];
    PyTypeObject *type = Py_TYPE(up);
    if (entry_layout(type) < 0)
        return NULL;
    PyObject *stored = slot_get(up, E_STORED), *up_expires = slot_get(up, E_EXPIRES), *ttls = slot_get(up, E_TTLS);
    if (stored == NULL || up_expires == NULL || ttls == NULL)
        return NULL;
    int shared = 0; /* 1: bytes and times as they are (no cap); 2: bytes shared, the expiry capped */
    if (PyFloat_CheckExact(now) && PyFloat_CheckExact(stored) && PyFloat_CheckExact(up_expires) &&
        PyTuple_CheckExact(ttls)) {
        double age = PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(stored);
        if (cap == Py_None) {
            if (age < 1.0) /* int(now - stored) <= 0 */
                shared = 1;
        } else if (PyLong_CheckExact(cap) && age > -1.0 && age < 1.0) { /* int(now - stored) == 0 */
            long c = PyLong_AsLong(cap);
            if (c == -1 && PyErr_Occurred())
                return NULL;
            shared = 2;
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(ttls) && shared; i++) {
                PyObject *t = PyTuple_GET_ITEM(ttls, i);
                if (!PyLong_CheckExact(t))
                    shared = 0;
                else {
                    long v = PyLong_AsLong(t);
                    if (v == -1 && PyErr_Occurred())
                        return NULL;
                    if (v > c)
                        shared = 0;
                }
            }
        }
    }
    if (!shared)
        return PyObject_CallMethod(up, "derive", "OO", now, cap);
    PyObject *tail = slot_get(up, E_TAIL), *offsets = slot_get(up, E_OFFSETS), *head = slot_get(up, E_HEAD);
    PyObject *stale_until = slot_get(up, E_STALE_UNTIL), *prefetch_at = slot_get(up, E_PREFETCH_AT);
    PyObject *rcode = slot_get(up, E_RCODE), *summary = slot_get(up, E_SUMMARY), *upstream = slot_get(up, E_UPSTREAM);
    PyObject *reason = slot_get(up, E_REASON), *synthesized = slot_get(up, E_SYNTHESIZED);
    PyObject *cnames = slot_get(up, E_CNAMES);
    if (!tail || !offsets || !head || !stale_until || !prefetch_at || !rcode || !summary || !upstream || !reason ||
        !synthesized || !cnames)
        return NULL;
    PyObject *e_stored, *e_expires;
    if (shared == 1) {
        e_stored = stored, e_expires = up_expires;
        Py_INCREF(e_stored);
        Py_INCREF(e_expires);
    } else {
        double n = PyFloat_AS_DOUBLE(now), left = PyFloat_AS_DOUBLE(up_expires) - n, c = (double)PyLong_AsLong(cap);
        e_stored = now;
        Py_INCREF(e_stored);
        e_expires = PyFloat_FromDouble(n + (c < left ? c : left));
        if (e_expires == NULL) {
            Py_DECREF(e_stored);
            return NULL;
        }
    }
    int earlier = PyObject_RichCompareBool(prefetch_at, e_expires, Py_LT);
    if (earlier < 0) {
        Py_DECREF(e_stored);
        Py_DECREF(e_expires);
        return NULL;
    }
    PyObject *e_prefetch = earlier ? prefetch_at : e_expires;
    PyObject *e = type->tp_alloc(type, 0);
    if (e == NULL) {
        Py_DECREF(e_stored);
        Py_DECREF(e_expires);
        return NULL;
    }
    entry_defaults(e);
    slot_copy(e, E_HEAD, head);
    slot_copy(e, E_TAIL, tail);
    slot_copy(e, E_PATCHED, tail);
    slot_copy(e, E_OFFSETS, offsets);
    slot_copy(e, E_TTLS, ttls);
    slot_copy(e, E_PREFETCH_AT, e_prefetch);
    slot_set(e, E_STORED, e_stored);
    slot_set(e, E_EXPIRES, e_expires);
    slot_copy(e, E_STALE_UNTIL, stale_until);
    slot_copy(e, E_RCODE, rcode);
    slot_copy(e, E_SUMMARY, summary);
    slot_copy(e, E_UPSTREAM, upstream);
    slot_copy(e, E_REASON, reason);
    slot_copy(e, E_SYNTHESIZED, synthesized);
    slot_copy(e, E_CNAMES, cnames);
    slot_copy(e, E_BASE, up);
    untrack_entry(e);
    return e;
}

/* CacheEntry.reply in C: the reply for ``query`` (its ID and question) at ``now``, the tail's TTLs re-patched when
 * the answer's age in whole seconds changed (entry.patched and entry.age updated, as the method does). Anything
 * unusual (an int clock, TTLs or offsets that do not fit) calls the method. */
static PyObject *fp_entry_reply(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "entry_reply(entry, query: bytes, qend: int, now)");
        return NULL;
    }
    PyObject *e = args[0], *query = args[1], *now = args[3];
    if (entry_layout(Py_TYPE(e)) < 0)
        return NULL;
    Py_ssize_t qend = PyLong_AsSsize_t(args[2]);
    if (qend == -1 && PyErr_Occurred())
        return NULL;
    PyObject *stored = SLOT_OF(e, E_STORED), *age_obj = SLOT_OF(e, E_AGE), *head = SLOT_OF(e, E_HEAD);
    PyObject *patched = SLOT_OF(e, E_PATCHED), *tail = SLOT_OF(e, E_TAIL), *offsets = SLOT_OF(e, E_OFFSETS);
    PyObject *ttls = SLOT_OF(e, E_TTLS);
    Py_ssize_t qn = PyBytes_GET_SIZE(query);
    if (!PyFloat_CheckExact(now) || stored == NULL || !PyFloat_CheckExact(stored) || age_obj == NULL ||
        !PyLong_CheckExact(age_obj) || head == NULL || !PyBytes_CheckExact(head) || patched == NULL ||
        !PyBytes_CheckExact(patched) || qend < 12 || qend > qn)
        goto by_method;
    double diff = PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(stored);
    if (!(diff > -1e15 && diff < 1e15))
        goto by_method;
    long long age = (long long)diff; /* int(): toward zero */
    long long had = PyLong_AsLongLong(age_obj);
    if (had == -1 && PyErr_Occurred())
        return NULL;
    if (age != had) {
        if (age < 0 || tail == NULL || !PyBytes_CheckExact(tail) || offsets == NULL || !PyTuple_CheckExact(offsets) ||
            ttls == NULL || !PyTuple_CheckExact(ttls) || PyTuple_GET_SIZE(offsets) != PyTuple_GET_SIZE(ttls))
            goto by_method;
        Py_ssize_t tn = PyBytes_GET_SIZE(tail), count = PyTuple_GET_SIZE(offsets);
        for (Py_ssize_t i = 0; i < count; i++) { /* everything checked before anything is written */
            PyObject *o = PyTuple_GET_ITEM(offsets, i), *t = PyTuple_GET_ITEM(ttls, i);
            if (!PyLong_CheckExact(o) || !PyLong_CheckExact(t))
                goto by_method;
            Py_ssize_t off = PyLong_AsSsize_t(o);
            long long ttl = PyLong_AsLongLong(t);
            if (PyErr_Occurred()) {
                PyErr_Clear();
                goto by_method;
            }
            if (off < 0 || off + 4 > tn || ttl < 0 || ttl > 0xFFFFFFFFLL)
                goto by_method;
        }
        PyObject *fresh = PyBytes_FromStringAndSize(PyBytes_AS_STRING(tail), tn);
        PyObject *new_age = PyLong_FromLongLong(age);
        if (fresh == NULL || new_age == NULL) {
            Py_XDECREF(fresh);
            Py_XDECREF(new_age);
            return NULL;
        }
        unsigned char *p = (unsigned char *)PyBytes_AS_STRING(fresh);
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t off = PyLong_AsSsize_t(PyTuple_GET_ITEM(offsets, i));
            long long ttl = PyLong_AsLongLong(PyTuple_GET_ITEM(ttls, i));
            wr32(p + off, (unsigned long)(ttl > age ? ttl - age : 0));
        }
        slot_set(e, E_PATCHED, fresh);
        slot_set(e, E_AGE, new_age);
        patched = fresh;
    }
    Py_ssize_t hn = PyBytes_GET_SIZE(head), pn = PyBytes_GET_SIZE(patched);
    PyObject *out = PyBytes_FromStringAndSize(NULL, 2 + hn + (qend - 12) + pn);
    if (out == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(out);
    const char *q = PyBytes_AS_STRING(query);
    memcpy(o, q, 2);
    memcpy(o + 2, PyBytes_AS_STRING(head), (size_t)hn);
    memcpy(o + 2 + hn, q + 12, (size_t)(qend - 12));
    memcpy(o + 2 + hn + (qend - 12), PyBytes_AS_STRING(patched), (size_t)pn);
    return out;
by_method: /* anything unusual: the method, which gives the same reply or the same error */
    return PyObject_CallMethod(e, "reply", "OOO", query, args[2], now);
}

/* AnswerCache._unalias(e), skipped for an entry without aliases (the method would only set them to () again). */
static int unalias(PyObject *cache, PyObject *e) {
    if (Py_TYPE(e) == entry_type && SLOT_OF(e, E_ALIASES) == c_empty_tuple)
        return 0;
    PyObject *r = PyObject_CallMethodOneArg(cache, s__unalias, e);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* AnswerCache.put in C (``cache``: the AnswerCache; its _entries an OrderedDict, _unalias and clock called as the
 * method calls them): cache ``entry`` under ``key`` and drop the oldest entries past config.size, each unless it
 * was hit since it was last looked at (CLOCK's second chance); returns the entry it replaced, or None. The same
 * side effects as the method, step for step (tests/engine/test_miss_twins.py). */
static PyObject *fp_cache_put(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "cache_put(cache, key, entry)");
        return NULL;
    }
    PyObject *cache = args[0], *key = args[1], *entry = args[2];
    if (entry_layout(Py_TYPE(entry)) < 0)
        return NULL;
    PyObject *config = PyObject_GetAttr(cache, s_config), *size_obj = NULL, *entries = NULL, *old = NULL;
    if (config == NULL)
        return NULL;
    size_obj = PyObject_GetAttr(config, s_size);
    if (size_obj == NULL)
        goto fail;
    Py_ssize_t size = PyLong_AsSsize_t(size_obj);
    if (size == -1 && PyErr_Occurred())
        goto fail;
    if (size <= 0) {
        Py_DECREF(config);
        Py_DECREF(size_obj);
        Py_RETURN_NONE;
    }
    entries = PyObject_GetAttr(cache, s__entries);
    if (entries == NULL)
        goto fail;
    if (!PyODict_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "cache_put: the cache's _entries is not an OrderedDict");
        goto fail;
    }
    old = PyDict_GetItemWithError(entries, key);
    if (old != NULL) {
        Py_INCREF(old);
        if (PyODict_DelItem(entries, key) < 0)
            goto fail;
        if (unalias(cache, old) < 0)
            goto fail;
    } else if (PyErr_Occurred())
        goto fail;
    slot_copy(entry, E_KEY, key);
    if (PyODict_SetItem(entries, key, entry) < 0)
        goto fail;
    while (PyDict_GET_SIZE(entries) > size) {
        PyObject *it = PyObject_GetIter(entries);
        if (it == NULL)
            goto fail;
        PyObject *oldest_key = PyIter_Next(it);
        Py_DECREF(it);
        if (oldest_key == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "cache_put: no oldest entry");
            goto fail;
        }
        PyObject *oldest = PyDict_GetItemWithError(entries, oldest_key);
        if (oldest == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, oldest_key);
            Py_DECREF(oldest_key);
            goto fail;
        }
        Py_INCREF(oldest);
        if (PyODict_DelItem(entries, oldest_key) < 0) {
            Py_DECREF(oldest_key);
            Py_DECREF(oldest);
            goto fail;
        }
        /* oldest.hits != oldest.seen and oldest.expires > self.clock(): a second chance */
        int again = 0;
        PyObject *hits = PyObject_GetAttr(oldest, s_hits), *seen = hits ? PyObject_GetAttr(oldest, s_seen) : NULL;
        if (seen != NULL) {
            again = PyObject_RichCompareBool(hits, seen, Py_NE);
            if (again > 0) {
                PyObject *expires = PyObject_GetAttr(oldest, s_expires);
                PyObject *clock = expires ? PyObject_GetAttr(cache, s_clock) : NULL;
                PyObject *now = clock ? PyObject_CallNoArgs(clock) : NULL;
                again = now ? PyObject_RichCompareBool(expires, now, Py_GT) : -1;
                Py_XDECREF(expires);
                Py_XDECREF(clock);
                Py_XDECREF(now);
            }
            if (again > 0 && (PyObject_SetAttr(oldest, s_seen, hits) < 0 ||
                              PyODict_SetItem(entries, oldest_key, oldest) < 0))
                again = -1;
        } else
            again = -1;
        Py_XDECREF(hits);
        Py_XDECREF(seen);
        if (again == 0) {
            PyObject *evictions = unalias(cache, oldest) == 0 ? PyObject_GetAttr(cache, s_evictions) : NULL;
            PyObject *more = evictions ? PyNumber_Add(evictions, c_one_int) : NULL;
            if (more == NULL || PyObject_SetAttr(cache, s_evictions, more) < 0)
                again = -1;
            Py_XDECREF(evictions);
            Py_XDECREF(more);
        }
        Py_DECREF(oldest_key);
        Py_DECREF(oldest);
        if (again < 0)
            goto fail;
    }
    Py_DECREF(config);
    Py_DECREF(size_obj);
    Py_DECREF(entries);
    if (old == NULL)
        Py_RETURN_NONE;
    return old;
fail:
    Py_DECREF(config);
    Py_XDECREF(size_obj);
    Py_XDECREF(entries);
    Py_XDECREF(old);
    return NULL;
}

/* Pipeline._fetched_for in C for the usual answer (a fresh upstream entry without CNAMEs, a reply that fits): the
 * view's copy (_view_entry: derive, its generation and key, the cache insert, the upstream entry's copies list) and
 * its sending (_send_entry: the reply, send, the latency histogram, the query-log record), the same steps in the
 * same order. Anything else (no entry, a CNAME chain for the view to check, a reply to truncate, an odd argument)
 * calls the method, so the results are always the method's (tests/engine/test_miss_twins.py). */
static PyObject *s__fetched_for, *s__send_entry, *s_generation, *s_tag, *s_cache, *s_put, *s_stats, *s_latency,
    *s__latency_buckets, *s_querylog, *s_record;

static PyObject *fp_fetched_for(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "fetched_for(pipeline, data, q, client, udp, send, started, view, cap, "
                                         "entry, error)");
        return NULL;
    }
    PyObject *p = args[0], *data = args[1], *q = args[2], *client = args[3], *udp = args[4], *send = args[5];
    PyObject *started = args[6], *view = args[7], *cap = args[8], *up = args[9];
    PyObject *now = NULL, *derived = NULL, *obj = NULL, *vkey = NULL, *out = NULL, *latency = NULL;
    if (up == Py_None || !PyBytes_CheckExact(data) || !PyTuple_Check(q) || PyTuple_GET_SIZE(q) != 3 ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(q, 0)) || !PyFloat_CheckExact(started))
        goto by_method;
    if (entry_layout(Py_TYPE(up)) < 0) {
        PyErr_Clear();
        goto by_method;
    }
    PyObject *cnames = SLOT_OF(up, E_CNAMES);
    if (cnames == NULL || !PyTuple_CheckExact(cnames) || PyTuple_GET_SIZE(cnames) != 0)
        goto by_method;
    PyObject *key = PyTuple_GET_ITEM(q, 0), *qend = PyTuple_GET_ITEM(q, 1), *limit = PyTuple_GET_ITEM(q, 2);
    /* now = self.clock() */
    if ((obj = PyObject_GetAttr(p, s_clock)) == NULL)
        return NULL;
    now = PyObject_CallNoArgs(obj);
    Py_CLEAR(obj);
    if (now == NULL)
        return NULL;
    if (!PyFloat_CheckExact(now)) { /* a test clock of ints: the method (which asks the clock again) */
        Py_DECREF(now);
        goto by_method;
    }
    /* _view_entry: derive, then the copy's generation and key, cached while it lives */
    PyObject *dargs[3] = {up, now, cap};
    if ((derived = fp_derive(mod, dargs, 3)) == NULL)
        goto fail;
    if (entry_layout(Py_TYPE(derived)) < 0)
        goto fail;
    if ((obj = PyObject_GetAttr(p, s_generation)) == NULL)
        goto fail;
    slot_set(derived, E_GEN, obj);
    obj = NULL;
    if ((obj = PyObject_GetAttr(view, s_tag)) == NULL)
        goto fail;
    if (!PyBytes_CheckExact(obj)) {
        PyErr_SetString(PyExc_TypeError, "a view's tag is bytes");
        goto fail;
    }
    vkey = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(obj) + PyBytes_GET_SIZE(key));
    if (vkey == NULL)
        goto fail;
    memcpy(PyBytes_AS_STRING(vkey), PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
    memcpy(PyBytes_AS_STRING(vkey) + PyBytes_GET_SIZE(obj), PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    Py_CLEAR(obj);
    slot_copy(derived, E_KEY, vkey);
    int alive = PyObject_RichCompareBool(SLOT_OF(derived, E_EXPIRES), now, Py_GT);
    if (alive < 0)
        goto fail;
    if (alive) {
        PyObject *cache = PyObject_GetAttr(p, s_cache);
        if (cache == NULL)
            goto fail;
        obj = PyObject_GetAttr(cache, s_put);
        Py_DECREF(cache);
        if (obj == NULL)
            goto fail;
        PyObject *pargs[2] = {vkey, derived};
        PyObject *old = PyObject_Vectorcall(obj, pargs, 2, NULL);
        Py_CLEAR(obj);
        if (old == NULL)
            goto fail;
        Py_DECREF(old);
        PyObject *copies = SLOT_OF(up, E_COPIES);
        int some = copies == NULL ? 0 : PyObject_IsTrue(copies);
        if (some < 0)
            goto fail;
        if (!some) {
            PyObject *list = PyList_New(1);
            if (list == NULL)
                goto fail;
            Py_INCREF(vkey);
            PyList_SET_ITEM(list, 0, vkey);
            slot_set(up, E_COPIES, list);
        } else {
            Py_ssize_t n = PyObject_Size(copies);
            if (n < 0)
                goto fail;
            if (n < 64) {
                PyObject *r = PyObject_CallMethodOneArg(copies, s_append, vkey);
                if (r == NULL)
                    goto fail;
                Py_DECREF(r);
            }
        }
    }
    /* _send_entry: the reply (truncated by the method when it does not fit), sent, timed and logged */
    PyObject *rargs[4] = {derived, data, qend, now};
    if ((out = fp_entry_reply(mod, rargs, 4)) == NULL)
        goto fail;
    int is_udp = PyObject_IsTrue(udp);
    if (is_udp < 0)
        goto fail;
    if (is_udp && PyBytes_Check(out)) {
        Py_ssize_t lim = PyLong_AsSsize_t(limit);
        if (lim == -1 && PyErr_Occurred())
            goto fail;
        if (PyBytes_GET_SIZE(out) > lim) {
            PyObject *sargs[10] = {p, derived, data, q, client, udp, send, started, now, Py_True};
            PyObject *r = PyObject_VectorcallMethod(s__send_entry, sargs, 10 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
            goto done;
        }
    }
    PyObject *r = PyObject_CallOneArg(send, out);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    double ms = (PyFloat_AS_DOUBLE(now) - PyFloat_AS_DOUBLE(started)) * 1000.0;
    if ((latency = PyFloat_FromDouble(ms)) == NULL)
        goto fail;
    { /* self.stats.latency[bisect_left(LATENCY_BUCKETS_MS, latency)] += 1 */
        PyObject *buckets = PyObject_GetAttr(p, s__latency_buckets);
        if (buckets == NULL)
            goto fail;
        if (!PyTuple_CheckExact(buckets)) {
            Py_DECREF(buckets);
            PyErr_SetString(PyExc_TypeError, "latency buckets are a tuple");
            goto fail;
        }
        Py_ssize_t lo = 0, hi = PyTuple_GET_SIZE(buckets);
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            int lt = PyObject_RichCompareBool(PyTuple_GET_ITEM(buckets, mid), latency, Py_LT);
            if (lt < 0) {
                Py_DECREF(buckets);
                goto fail;
            }
            if (lt)
                lo = mid + 1;
            else
                hi = mid;
        }
        Py_DECREF(buckets);
        PyObject *stats = PyObject_GetAttr(p, s_stats);
        if (stats == NULL)
            goto fail;
        obj = PyObject_GetAttr(stats, s_latency);
        Py_DECREF(stats);
        if (obj == NULL)
            goto fail;
        PyObject *index = PyLong_FromSsize_t(lo), *count = NULL, *more = NULL;
        int ok = index != NULL && (count = PyObject_GetItem(obj, index)) != NULL &&
                 (more = PyNumber_Add(count, c_one_int)) != NULL && PyObject_SetItem(obj, index, more) == 0;
        Py_XDECREF(index);
        Py_XDECREF(count);
        Py_XDECREF(more);
        Py_CLEAR(obj);
        if (!ok)
            goto fail;
    }
    { /* self.querylog.record(now, client, q.key, entry.rcode, entry, entry.upstream, latency, False, entry.reason),
       * its body: the entry appended to the ring when the log is on, a full ring counting one dropped */
        PyObject *ql = PyObject_GetAttr(p, s_querylog), *config = NULL, *ring = NULL, *ml = NULL, *item = NULL;
        int ok = ql != NULL && (config = PyObject_GetAttr(ql, s_config)) != NULL;
        int enabled = ok ? attr_true(config, s_enabled) : -1;
        if (enabled > 0) {
            PyObject *rcode = slot_get(derived, E_RCODE), *upstream = slot_get(derived, E_UPSTREAM);
            PyObject *reason = slot_get(derived, E_REASON);
            ok = rcode != NULL && upstream != NULL && reason != NULL && (ring = PyObject_GetAttr(ql, s_ring)) != NULL &&
                 (ml = PyObject_GetAttr(ring, s_maxlen)) != NULL;
            if (ok && ml != Py_None) {
                Py_ssize_t n = PyObject_Length(ring), most = PyLong_AsSsize_t(ml);
                ok = n >= 0 && !(most == -1 && PyErr_Occurred()) && (n != most || add_count(ql, s_dropped, 1) == 0);
            }
            PyObject *parts[9] = {now, client, key, rcode, derived, upstream, latency, Py_False, reason};
            if (ok && (ok = (item = PyTuple_Pack(9, parts[0], parts[1], parts[2], parts[3], parts[4], parts[5],
                                                parts[6], parts[7], parts[8])) != NULL)) {
                r = PyObject_CallMethodOneArg(ring, s_append, item);
                ok = r != NULL;
                Py_XDECREF(r);
            }
        } else
            ok = enabled == 0;
        Py_XDECREF(ql);
        Py_XDECREF(config);
        Py_XDECREF(ring);
        Py_XDECREF(ml);
        Py_XDECREF(item);
        if (!ok)
            goto fail;
    }
done:
    Py_DECREF(now);
    Py_DECREF(derived);
    Py_DECREF(vkey);
    Py_DECREF(out);
    Py_XDECREF(latency);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(now);
    Py_XDECREF(derived);
    Py_XDECREF(obj);
    Py_XDECREF(vkey);
    Py_XDECREF(out);
    Py_XDECREF(latency);
    return NULL;
by_method:
    return PyObject_VectorcallMethod(s__fetched_for, (PyObject **)args, 11, NULL);
}

/* Fetcher._fetched in C for a reply the one-pass rewrite takes: the entry (the fetcher's _reply_entry), its
 * generation and key, the cache insert (the replaced entry's copies re-pointed by the cache's method), then each
 * waiter called with it: a tuple (function, *first arguments) as function(*first, entry, error), anything else as
 * waiter(entry, error); a waiter that raises is handed to fetcher._waiter_failed and the others still answered.
 * No reply, a reply the rewrite declines or raises on (the careful way, which words the error): the method,
 * from the start (nothing was changed yet). The same steps as the method (tests/engine/test_miss_twins.py). */
static PyObject *s__fetched, *s__reply_entry, *s_p, *s_edns_size, *s_min_ttl, *s_max_ttl, *s_negative_max_ttl,
    *s_serve_stale, *s_copies, *s_replace_copies, *s_waiting, *s__waiter_failed;

static int call_waiter(PyObject *fetcher, PyObject *w, PyObject *entry, PyObject *error) {
    PyObject *r;
    if (PyTuple_CheckExact(w) && PyTuple_GET_SIZE(w) >= 1 && PyTuple_GET_SIZE(w) <= 14) {
        PyObject *call[16];
        Py_ssize_t n = PyTuple_GET_SIZE(w) - 1;
        for (Py_ssize_t i = 0; i < n; i++)
            call[i] = PyTuple_GET_ITEM(w, i + 1);
        call[n] = entry;
        call[n + 1] = error;
        r = PyObject_Vectorcall(PyTuple_GET_ITEM(w, 0), call, n + 2, NULL);
    } else if (PyTuple_CheckExact(w)) {
        PyErr_SetString(PyExc_TypeError, "a waiter tuple is (function, up to 13 arguments)");
        r = NULL;
    } else {
        PyObject *call[2] = {entry, error};
        r = PyObject_Vectorcall(w, call, 2, NULL);
    }
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    PyObject *fargs[2] = {fetcher, value != NULL ? value : Py_None};
    r = PyObject_VectorcallMethod(s__waiter_failed, fargs, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *fp_fetched(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "fetched(fetcher, key, generation, reply, upstream, error)");
        return NULL;
    }
    PyObject *fetcher = args[0], *key = args[1], *generation = args[2], *reply = args[3], *upstream = args[4];
    PyObject *error = args[5];
    PyObject *p = NULL, *cache = NULL, *cfg = NULL, *make = NULL, *entry = NULL, *waiters = NULL, *now = NULL;
    PyObject *call[9] = {NULL};
    if (reply == Py_None || !PyBytes_CheckExact(reply) || !PyBytes_CheckExact(key))
        goto by_method;
    if ((p = PyObject_GetAttr(fetcher, s_p)) == NULL || (cache = PyObject_GetAttr(p, s_cache)) == NULL ||
        (cfg = PyObject_GetAttr(cache, s_config)) == NULL || (make = PyObject_GetAttr(fetcher, s__reply_entry)) == NULL)
        goto fail;
    /* entry = self._reply_entry(reply, key, p.edns_size, cfg.min_ttl, cfg.max_ttl, cfg.negative_max_ttl,
     *                           p.clock(), cfg.serve_stale, upstream) */
    call[0] = reply, call[1] = key, call[8] = upstream;
    Py_INCREF(reply), Py_INCREF(key), Py_INCREF(upstream);
    if ((call[2] = PyObject_GetAttr(p, s_edns_size)) == NULL || (call[3] = PyObject_GetAttr(cfg, s_min_ttl)) == NULL ||
        (call[4] = PyObject_GetAttr(cfg, s_max_ttl)) == NULL ||
        (call[5] = PyObject_GetAttr(cfg, s_negative_max_ttl)) == NULL)
        goto fail;
    PyObject *clock = PyObject_GetAttr(p, s_clock);
    if (clock == NULL)
        goto fail;
    call[6] = PyObject_CallNoArgs(clock);
    Py_DECREF(clock);
    if (call[6] == NULL || (call[7] = PyObject_GetAttr(cfg, s_serve_stale)) == NULL)
        goto fail;
    entry = PyObject_Vectorcall(make, call, 9, NULL);
    if (entry == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto fail;
        PyErr_Clear();   /* a reply that raises: the method says why */
        goto by_method_clean;
    }
    if (entry == Py_None || entry_layout(Py_TYPE(entry)) < 0) {
        PyErr_Clear();
        goto by_method_clean;
    }
    slot_copy(entry, E_GEN, generation);
    slot_copy(entry, E_KEY, key);
    int alive = PyObject_RichCompareBool(SLOT_OF(entry, E_EXPIRES), SLOT_OF(entry, E_STORED), Py_GT);
    if (alive < 0)
        goto fail;
    if (alive) {
        PyObject *put = PyObject_GetAttr(cache, s_put);
        if (put == NULL)
            goto fail;
        PyObject *pargs[2] = {key, entry};
        PyObject *old = PyObject_Vectorcall(put, pargs, 2, NULL);
        Py_DECREF(put);
        if (old == NULL)
            goto fail;
        if (old != Py_None) {
            PyObject *copies = PyObject_GetAttr(old, s_copies);
            int some = copies == NULL ? -1 : PyObject_IsTrue(copies);
            Py_XDECREF(copies);
            if (some > 0) {
                PyObject *rargs[2] = {cache, old};
                PyObject *r = PyObject_VectorcallMethod(s_replace_copies, rargs, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                                        NULL);
                Py_XDECREF(r);
                if (r == NULL)
                    some = -1;
            }
            if (some < 0) {
                Py_DECREF(old);
                goto fail;
            }
        }
        Py_DECREF(old);
    }
    /* for on_done in self.waiting.pop(key, ()) */
    PyObject *waiting = PyObject_GetAttr(fetcher, s_waiting);
    if (waiting == NULL)
        goto fail;
    if (!PyDict_CheckExact(waiting)) {
        Py_DECREF(waiting);
        PyErr_SetString(PyExc_TypeError, "fetcher.waiting is a dict");
        goto fail;
    }
    waiters = PyDict_GetItemWithError(waiting, key);
    if (waiters == NULL) {
        Py_DECREF(waiting);
        if (PyErr_Occurred())
            goto fail;
    } else {
        Py_INCREF(waiters);
        int gone = PyDict_DelItem(waiting, key);
        Py_DECREF(waiting);
        if (gone < 0)
            goto fail;
        PyObject *seq = PySequence_Fast(waiters, "waiters are a list");
        if (seq == NULL)
            goto fail;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++)
            if (call_waiter(fetcher, PySequence_Fast_GET_ITEM(seq, i), entry, error) < 0) {
                Py_DECREF(seq);
                goto fail;
            }
        Py_DECREF(seq);
    }
    Py_XDECREF(waiters);
    for (int i = 0; i < 9; i++)
        Py_XDECREF(call[i]);
    Py_DECREF(p);
    Py_DECREF(cache);
    Py_DECREF(cfg);
    Py_DECREF(make);
    Py_DECREF(entry);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(waiters);
    for (int i = 0; i < 9; i++)
        Py_XDECREF(call[i]);
    Py_XDECREF(p);
    Py_XDECREF(cache);
    Py_XDECREF(cfg);
    Py_XDECREF(make);
    Py_XDECREF(entry);
    Py_XDECREF(now);
    return NULL;
by_method_clean:
    for (int i = 0; i < 9; i++)
        Py_XDECREF(call[i]);
    Py_XDECREF(p);
    Py_XDECREF(cache);
    Py_XDECREF(cfg);
    Py_XDECREF(make);
    Py_XDECREF(entry);
by_method:
    return PyObject_VectorcallMethod(s__fetched, (PyObject **)args, 6, NULL);
}

/* UpstreamPool.forward in C for the usual first try: failover order already known, the first upstream a UDP one
 * with a batched socket ready. The same steps as the method (tests/engine/test_miss_twins.py): the query's
 * _Forward (made without calling __init__, the same attributes set), its first try (the upstream's count, the
 * start time), its deadline in the pool's queue (_Deadlines.arm), and the query on the transport's next socket
 * (UDPTransport.send: the pending table, the socket's uses and retirement; _BatchedUDPEndpoint.send: the outbox,
 * flushed once per event-loop turn). Anything else (a closed pool, another strategy, a stream or DoH upstream,
 * a socket still to open, a plain endpoint) calls the method before anything changed. */
static PyObject *s__closed, *s__loop, *s_is_running, *s__failover_order, *s_strategy, *s_fastest, *s_attempts,
    *s_transport, *s__live, *s__opening, *s__size, *s__turn, *s__max_uses, *s_pending, *s_uses, *s_retired,
    *s_outbox, *s_waiting_send, *s_call_soon, *s__flush, *s_loop, *s_on_reply, *s__deadlines, *s_live, *s_serial,
    *s_queue, *s_timeout, *s_handle, *s_tick, *s__check, *s_call_later, *s_time, *s_queries, *s_pool, *s_packet,
    *s_done, *s_question, *s_order, *s_attempt, *s_upstream, *s_started, *s_armed, *s_token, *s_forward,
    *s_remove;

/* The method ``name`` of args[0]'s class called with args (args[0] the instance): the Python twin of a step
 * done here, reached past the instance attribute that installs the step. */
static PyObject *by_class_method(PyObject *name, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *method = PyObject_GetAttr((PyObject *)Py_TYPE(args[0]), name);
    if (method == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(method, args, nargs, NULL);
    Py_DECREF(method);
    return r;
}

static PyObject *forward_reply_fn; /* the module's forward_reply, each try's reply callback bound to its _Forward */
static PyObject *bound_of(PyObject *func, PyObject *arg);

static PyObject *fp_forward_udp(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "forward_udp(pool, Forward, UDPTransport, BatchedEndpoint, packet, done, "
                                         "question=None)");
        return NULL;
    }
    PyObject *pool = args[0], *fwd_type = args[1], *udp_type = args[2], *ep_type = args[3], *packet = args[4];
    PyObject *done = args[5], *question = nargs == 7 ? args[6] : Py_None;
    PyObject *loop = NULL, *order = NULL, *u = NULL, *transport = NULL, *live = NULL, *ep = NULL, *fwd = NULL;
    PyObject *now = NULL, *dl = NULL, *w = NULL, *token = NULL, *tmp = NULL;
    int t;
    if (!PyType_Check(fwd_type) || question == Py_None || !PyBytes_CheckExact(packet) || PyBytes_GET_SIZE(packet) < 2)
        goto by_method;
    /* the checks, in the method's order of effects: nothing changes before they all pass */
    if ((t = attr_true(pool, s__closed)) != 0)
        goto checked;
    if ((loop = PyObject_GetAttr(pool, s__loop)) == NULL)
        goto fail;
    if (loop == Py_None)
        goto by_method_clean;
    if ((tmp = PyObject_CallMethodNoArgs(loop, s_is_running)) == NULL)
        goto fail;
    t = PyObject_IsTrue(tmp);
    Py_CLEAR(tmp);
    if (t <= 0)
        goto checked;
    if ((order = PyObject_GetAttr(pool, s__failover_order)) == NULL)
        goto fail;
    if (!PyList_CheckExact(order) || PyList_GET_SIZE(order) == 0)
        goto by_method_clean;
    if ((tmp = PyObject_GetAttr(pool, s_strategy)) == NULL)
        goto fail;
    t = PyObject_RichCompareBool(tmp, s_fastest, Py_EQ);
    Py_CLEAR(tmp);
    if (t != 0)
        goto checked;
    long attempts;
    if (attr_long(pool, s_attempts, &attempts) < 0)
        goto fail;
    if (attempts < 1)
        goto by_method_clean;
    u = PyList_GET_ITEM(order, 0);
    Py_INCREF(u);
    if ((transport = PyObject_GetAttr(u, s_transport)) == NULL)
        goto fail;
    if (Py_TYPE(transport) != (PyTypeObject *)udp_type)
        goto by_method_clean;
    if ((t = attr_true(transport, s__closed)) != 0)
        goto checked;
    long opening, size, turn, max_uses;
    if ((live = PyObject_GetAttr(transport, s__live)) == NULL || attr_long(transport, s__opening, &opening) < 0 ||
        attr_long(transport, s__size, &size) < 0 || attr_long(transport, s__turn, &turn) < 0 ||
        attr_long(transport, s__max_uses, &max_uses) < 0)
        goto fail;
    if (!PyList_CheckExact(live) || PyList_GET_SIZE(live) == 0 || PyList_GET_SIZE(live) + opening < size)
        goto by_method_clean;
    ep = PyList_GET_ITEM(live, (turn + 1) % PyList_GET_SIZE(live));
    Py_INCREF(ep);
    if (Py_TYPE(ep) != (PyTypeObject *)ep_type)
        goto by_method_clean;

    /* _Forward(pool, packet, done, question, loop, order), its first try */
    PyTypeObject *ft = (PyTypeObject *)fwd_type;
    if ((fwd = ft->tp_new(ft, c_empty_tuple, NULL)) == NULL)
        goto fail;
    if (PyObject_SetAttr(fwd, s_pool, pool) < 0 || PyObject_SetAttr(fwd, s_packet, packet) < 0 ||
        PyObject_SetAttr(fwd, s_done, done) < 0 || PyObject_SetAttr(fwd, s_question, question) < 0 ||
        PyObject_SetAttr(fwd, s_loop, loop) < 0 || PyObject_SetAttr(fwd, s_order, order) < 0 ||
        PyObject_SetAttr(fwd, s_upstream, u) < 0 || PyObject_SetAttr(fwd, s_attempt, c_one_int) < 0 ||
        attr_add(u, s_queries, 1, NULL) < 0)
        goto fail;
    if ((now = PyObject_CallMethodNoArgs(loop, s_time)) == NULL || PyObject_SetAttr(fwd, s_started, now) < 0)
        goto fail;
    /* pool._deadlines.arm(loop, now, fwd) (a new _Forward is not armed yet) */
    long serial;
    if ((dl = PyObject_GetAttr(pool, s__deadlines)) == NULL || attr_add(dl, s_serial, 1, &serial) < 0)
        goto fail;
    {
        PyObject *tok = PyLong_FromLong(serial), *tlive = NULL, *queue = NULL, *timeout = NULL, *deadline = NULL;
        PyObject *pair = NULL, *r = NULL;
        int ok = tok != NULL && PyObject_SetAttr(fwd, s_armed, tok) == 0 &&
                 (tlive = PyObject_GetAttr(dl, s_live)) != NULL && PyObject_SetItem(tlive, tok, fwd) == 0 &&
                 (timeout = PyObject_GetAttr(dl, s_timeout)) != NULL &&
                 (deadline = PyNumber_Add(now, timeout)) != NULL && (pair = PyTuple_Pack(2, deadline, tok)) != NULL &&
                 (queue = PyObject_GetAttr(dl, s_queue)) != NULL &&
                 (r = PyObject_CallMethodOneArg(queue, s_append, pair)) != NULL;
        Py_XDECREF(tok);
        Py_XDECREF(tlive);
        Py_XDECREF(queue);
        Py_XDECREF(timeout);
        Py_XDECREF(deadline);
        Py_XDECREF(pair);
        Py_XDECREF(r);
        if (!ok)
            goto fail;
        if ((tmp = PyObject_GetAttr(dl, s_handle)) == NULL)
            goto fail;
        if (tmp == Py_None) { /* self.handle = loop.call_later(self.tick, self._check, loop) */
            PyObject *tick = PyObject_GetAttr(dl, s_tick), *check = PyObject_GetAttr(dl, s__check), *handle = NULL;
            if (tick != NULL && check != NULL) {
                PyObject *cargs[4] = {loop, tick, check, loop};
                handle = PyObject_VectorcallMethod(s_call_later, cargs, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            }
            ok = handle != NULL && PyObject_SetAttr(dl, s_handle, handle) == 0;
            Py_XDECREF(tick);
            Py_XDECREF(check);
            Py_XDECREF(handle);
            if (!ok)
                goto fail;
        }
        Py_CLEAR(tmp);
    }
    /* token = u.transport.send(packet, fwd.on_reply, question) */
    if (attr_add(transport, s__turn, 1, NULL) < 0)
        goto fail;
    long qid = ((unsigned char)PyBytes_AS_STRING(packet)[0]) << 8 | (unsigned char)PyBytes_AS_STRING(packet)[1];
    PyObject *qid_obj = PyLong_FromLong(qid);
    if (qid_obj == NULL)
        goto fail;
    PyObject *on_reply = bound_of(forward_reply_fn, fwd); /* fwd.on_reply, in C for the usual reply */
    if (on_reply == NULL || (w = PyList_New(2)) == NULL) {
        Py_XDECREF(on_reply);
        Py_DECREF(qid_obj);
        goto fail;
    }
    Py_INCREF(question);
    PyList_SET_ITEM(w, 0, question);
    PyList_SET_ITEM(w, 1, on_reply);
    {
        PyObject *pending = PyObject_GetAttr(ep, s_pending), *waiters = NULL;
        int ok = pending != NULL && PyDict_CheckExact(pending);
        if (ok) {
            waiters = PyDict_GetItemWithError(pending, qid_obj);
            if (waiters == NULL) {
                PyObject *one = PyErr_Occurred() ? NULL : PyList_New(1);
                ok = one != NULL;
                if (ok) {
                    Py_INCREF(w);
                    PyList_SET_ITEM(one, 0, w);
                    ok = PyDict_SetItem(pending, qid_obj, one) == 0;
                    Py_DECREF(one);
                }
            } else
                ok = PyList_Append(waiters, w) == 0;
        } else if (pending != NULL)
            PyErr_SetString(PyExc_TypeError, "an endpoint's pending table is a dict");
        Py_XDECREF(pending);
        if (!ok) {
            Py_DECREF(qid_obj);
            goto fail;
        }
    }
    long uses;
    if (attr_add(ep, s_uses, 1, &uses) < 0) {
        Py_DECREF(qid_obj);
        goto fail;
    }
    if (uses >= max_uses) { /* retire: no new queries, closed once its last reply is in */
        int in = PySequence_Contains(live, ep);
        if (in < 0 || (in && ((tmp = PyObject_CallMethodOneArg(live, s_remove, ep)) == NULL ||
                              PyObject_SetAttr(ep, s_retired, Py_True) < 0))) {
            Py_DECREF(qid_obj);
            goto fail;
        }
        Py_CLEAR(tmp);
    }
    { /* ep.send(packet, w): the outbox, flushed at the end of this event-loop turn */
        PyObject *outbox = PyObject_GetAttr(ep, s_outbox), *sent_for = PyObject_GetAttr(ep, s_waiting_send);
        int ok = outbox != NULL && sent_for != NULL && PyList_CheckExact(outbox) && PyList_CheckExact(sent_for) &&
                 PyList_Append(outbox, packet) == 0 && PyList_Append(sent_for, w) == 0;
        if (ok && PyList_GET_SIZE(outbox) == 1) {
            PyObject *eloop = PyObject_GetAttr(ep, s_loop), *flush = PyObject_GetAttr(ep, s__flush), *r = NULL;
            if (eloop != NULL && flush != NULL)
                r = PyObject_CallMethodOneArg(eloop, s_call_soon, flush);
            ok = r != NULL;
            Py_XDECREF(eloop);
            Py_XDECREF(flush);
            Py_XDECREF(r);
        } else if (!ok && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "an endpoint's outbox is a list");
        Py_XDECREF(outbox);
        Py_XDECREF(sent_for);
        if (!ok) {
            Py_DECREF(qid_obj);
            goto fail;
        }
    }
    token = PyTuple_Pack(3, ep, qid_obj, w);
    Py_DECREF(qid_obj);
    if (token == NULL || PyObject_SetAttr(fwd, s_token, token) < 0)
        goto fail;
    Py_DECREF(loop);
    Py_DECREF(order);
    Py_DECREF(u);
    Py_DECREF(transport);
    Py_DECREF(live);
    Py_DECREF(ep);
    Py_DECREF(fwd);
    Py_DECREF(now);
    Py_DECREF(dl);
    Py_DECREF(w);
    Py_DECREF(token);
    Py_RETURN_NONE;
checked: /* t: 1 = go by the method, -1 = an error */
    if (t < 0)
        goto fail;
by_method_clean:
    Py_XDECREF(loop);
    Py_XDECREF(order);
    Py_XDECREF(u);
    Py_XDECREF(transport);
    Py_XDECREF(live);
    Py_XDECREF(ep);
by_method: {
    PyObject *margs[4] = {pool, packet, done, question};
    return by_class_method(s_forward, margs, nargs == 7 ? 4 : 3);
}
fail:
    Py_XDECREF(loop);
    Py_XDECREF(order);
    Py_XDECREF(u);
    Py_XDECREF(transport);
    Py_XDECREF(live);
    Py_XDECREF(ep);
    Py_XDECREF(fwd);
    Py_XDECREF(now);
    Py_XDECREF(dl);
    Py_XDECREF(w);
    Py_XDECREF(token);
    Py_XDECREF(tmp);
    return NULL;
}

/* bound(function, *first): a call with its first arguments bound, as functools.partial without keywords, made
 * for every miss: one object (a partial also allocates an arguments tuple and a keywords dict), and called
 * without a Python frame when the function is built in. */
typedef struct {
    PyObject_VAR_HEAD
    vectorcallfunc vectorcall;
    PyObject *func;
    PyObject *first[1];
} Bound;

static PyObject *Bound_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Bound *b = (Bound *)self;
    Py_ssize_t n = Py_SIZE(b), more = PyVectorcall_NARGS(nargsf);
    Py_ssize_t kw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *small[12], **call = small;
    if (n + more + kw > 12 && (call = PyMem_Malloc((n + more + kw) * sizeof(PyObject *))) == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++)
        call[i] = b->first[i];
    for (Py_ssize_t i = 0; i < more + kw; i++)
        call[n + i] = args[i];
    PyObject *r = PyObject_Vectorcall(b->func, call, n + more, kwnames);
    if (call != small)
        PyMem_Free(call);
    return r;
}

static PyObject *Bound_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if ((kwds != NULL && PyDict_GET_SIZE(kwds)) || PyTuple_GET_SIZE(args) < 1 ||
        !PyCallable_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "bound(function, *first arguments)");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args) - 1;
    Bound *b = PyObject_GC_NewVar(Bound, type, n);
    if (b == NULL)
        return NULL;
    b->vectorcall = Bound_vectorcall;
    b->func = Py_NewRef(PyTuple_GET_ITEM(args, 0));
    for (Py_ssize_t i = 0; i < n; i++)
        b->first[i] = Py_NewRef(PyTuple_GET_ITEM(args, i + 1));
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

static int Bound_traverse(Bound *b, visitproc visit, void *arg) {
    Py_VISIT(b->func);
    for (Py_ssize_t i = 0; i < Py_SIZE(b); i++)
        Py_VISIT(b->first[i]);
    return 0;
}

static int Bound_clear(Bound *b) {
    Py_CLEAR(b->func);
    for (Py_ssize_t i = 0; i < Py_SIZE(b); i++)
        Py_CLEAR(b->first[i]);
    return 0;
}

static void Bound_dealloc(Bound *b) {
    PyObject_GC_UnTrack(b);
    Bound_clear(b);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *Bound_repr(Bound *b) {
    return PyUnicode_FromFormat("bound(%R, %zd arguments)", b->func, Py_SIZE(b));
}

static PyObject *Bound_get_func(Bound *b, void *Py_UNUSED(closure)) {
    return Py_NewRef(b->func ? b->func : Py_None);
}

static PyObject *Bound_get_args(Bound *b, void *Py_UNUSED(closure)) {
    PyObject *t = PyTuple_New(Py_SIZE(b));
    if (t == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < Py_SIZE(b); i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(b->first[i] ? b->first[i] : Py_None));
    return t;
}

static PyGetSetDef Bound_getset[] = {
    {"func", (getter)Bound_get_func, NULL, "the function", NULL},
    {"args", (getter)Bound_get_args, NULL, "the first arguments", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BoundType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "resolver.engine._fastpath.bound",
    .tp_basicsize = offsetof(Bound, first),
    .tp_itemsize = sizeof(PyObject *),
    .tp_dealloc = (destructor)Bound_dealloc,
    .tp_vectorcall_offset = offsetof(Bound, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_repr = (reprfunc)Bound_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "bound(function, *first): calls function(*first, *more), as functools.partial without keywords",
    .tp_traverse = (traverseproc)Bound_traverse,
    .tp_clear = (inquiry)Bound_clear,
    .tp_getset = Bound_getset,
    .tp_new = Bound_new,
};

static PyObject *bound_of(PyObject *func, PyObject *arg) {
    if (func == NULL) {
        PyErr_SetString(PyExc_SystemError, "_fastpath not initialised");
        return NULL;
    }
    Bound *b = PyObject_GC_NewVar(Bound, &BoundType, 1);
    if (b == NULL)
        return NULL;
    b->vectorcall = Bound_vectorcall;
    b->func = Py_NewRef(func);
    b->first[0] = Py_NewRef(arg);
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

/* _Forward.on_reply in C for the usual reply over UDP: an answer (not TC, not SERVFAIL or REFUSED) to a try still
 * running. The same steps as the method (tests/engine/test_miss_twins.py): the try finished, its deadline
 * dropped, the upstream's EWMA updated, its recovery noted by the pool's method when it was failing, and the
 * query's ``done(reply, url, None)`` called. Anything else (an exception, a finished try, TC with a TCP
 * fallback, a failing rcode) calls the method. */
static PyObject *s_finished, *s_tcp, *s_ewma, *s_ewma_alpha, *s_rcode_failures, *s_healthy, *s_down_since,
    *s__recovered, *s_spec, *s_url, *s_pop;

static PyObject *fp_forward_reply(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "forward_reply(forward, result)");
        return NULL;
    }
    PyObject *fwd = args[0], *data = args[1];
    PyObject *u = NULL, *pool = NULL, *tmp = NULL, *url = NULL;
    int t;
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) < 4)
        goto by_method;
    if ((t = attr_true(fwd, s_finished)) != 0)
        goto checked;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    int rc = d[3] & 0x0F;
    if (rc == 2 || rc == 5)
        goto by_method;
    if ((u = PyObject_GetAttr(fwd, s_upstream)) == NULL)
        goto fail;
    if (d[2] & 0x02) { /* TC: again over TCP when the upstream has it */
        if ((tmp = PyObject_GetAttr(u, s_tcp)) == NULL)
            goto fail;
        t = tmp != Py_None;
        Py_CLEAR(tmp);
        if (t)
            goto by_method_clean;
    }
    if ((pool = PyObject_GetAttr(fwd, s_pool)) == NULL)
        goto fail;
    /* self.token = None; self.finished = True; the deadline disarmed */
    if (PyObject_SetAttr(fwd, s_token, Py_None) < 0 || PyObject_SetAttr(fwd, s_finished, Py_True) < 0)
        goto fail;
    if ((tmp = PyObject_GetAttr(fwd, s_armed)) == NULL)
        goto fail;
    if ((t = PyObject_IsTrue(tmp)) < 0)
        goto fail;
    if (t) {
        PyObject *dl = PyObject_GetAttr(pool, s__deadlines), *live = NULL, *r = NULL;
        if (dl != NULL && (live = PyObject_GetAttr(dl, s_live)) != NULL) {
            PyObject *pargs[3] = {live, tmp, Py_None};
            r = PyObject_VectorcallMethod(s_pop, pargs, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        Py_XDECREF(dl);
        Py_XDECREF(live);
        Py_XDECREF(r);
        if (r == NULL || PyObject_SetAttr(fwd, s_armed, c_zero_int) < 0)
            goto fail;
    }
    Py_CLEAR(tmp);
    { /* the EWMA of the upstream's answer times */
        PyObject *loop = PyObject_GetAttr(fwd, s_loop), *now = NULL, *started = NULL, *ewma = NULL, *alpha = NULL;
        PyObject *value = NULL;
        int ok = loop != NULL && (now = PyObject_CallMethodNoArgs(loop, s_time)) != NULL &&
                 (started = PyObject_GetAttr(fwd, s_started)) != NULL && (ewma = PyObject_GetAttr(u, s_ewma)) != NULL &&
                 (alpha = PyObject_GetAttr(fwd, s_ewma_alpha)) != NULL;
        if (ok) {
            double ms = (PyFloat_AsDouble(now) - PyFloat_AsDouble(started)) * 1000.0, a = PyFloat_AsDouble(alpha);
            double e = ewma == Py_None ? 0.0 : PyFloat_AsDouble(ewma);
            ok = !PyErr_Occurred() && (value = PyFloat_FromDouble(ewma == Py_None ? ms : e + a * (ms - e))) != NULL &&
                 PyObject_SetAttr(u, s_ewma, value) == 0;
        }
        Py_XDECREF(loop);
        Py_XDECREF(now);
        Py_XDECREF(started);
        Py_XDECREF(ewma);
        Py_XDECREF(alpha);
        Py_XDECREF(value);
        if (!ok)
            goto fail;
    }
    { /* if u.rcode_failures or not u.healthy or pool.down_since is not None: pool._recovered(u) */
        int failing = attr_true(u, s_rcode_failures);
        if (failing == 0) {
            int healthy = attr_true(u, s_healthy);
            failing = healthy < 0 ? -1 : !healthy;
        }
        if (failing == 0) {
            if ((tmp = PyObject_GetAttr(pool, s_down_since)) == NULL)
                goto fail;
            failing = tmp != Py_None;
            Py_CLEAR(tmp);
        }
        if (failing < 0)
            goto fail;
        if (failing) {
            PyObject *rargs[2] = {pool, u};
            PyObject *r = PyObject_VectorcallMethod(s__recovered, rargs, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
        }
    }
    { /* self.done(data, u.spec.url, None) */
        PyObject *spec = PyObject_GetAttr(u, s_spec), *done = NULL;
        if (spec != NULL)
            url = PyObject_GetAttr(spec, s_url);
        Py_XDECREF(spec);
        if (url == NULL || (done = PyObject_GetAttr(fwd, s_done)) == NULL)
            goto fail;
        PyObject *dargs[3] = {data, url, Py_None};
        PyObject *r = PyObject_Vectorcall(done, dargs, 3, NULL);
        Py_DECREF(done);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    Py_DECREF(u);
    Py_DECREF(pool);
    Py_DECREF(url);
    Py_RETURN_NONE;
checked:
    if (t < 0)
        goto fail;
by_method_clean:
    Py_XDECREF(u);
by_method: {
    PyObject *margs[2] = {fwd, data};
    return PyObject_VectorcallMethod(s_on_reply, margs, 2, NULL);
}
fail:
    Py_XDECREF(u);
    Py_XDECREF(pool);
    Py_XDECREF(tmp);
    Py_XDECREF(url);
    return NULL;
}

/* Pipeline.resolve_later in C for the usual miss: the packet answer_cached just looked up, a plain question
 * (class IN, not ANY or a transfer, not a local name) that the client's view allows, with nothing cached for
 * it: the question checked, the view's verdict (its Python method), the counts, and the fetch (Fetcher.fetch:
 * joined to one under way, or the upstream query, its reply callback, and the pool's forward). The same steps as
 * the method (tests/engine/test_miss_twins.py); a blocked or rewritten name goes to _answer_verdict, anything
 * else to the method before anything changed, a cached or stale entry to _forward after the counts. */
static PyObject *s__looked_up, *s__waiting, *s__tasks, *s_max_pending, *s__checked_question, *s__special_qtypes,
    *s_local, *s_wire_names, *s_decide, *s_wall, *s_action, *s_allow, *s_ttl_cap, *s__answer_verdict,
    *s_slow_queries, *s_cache_misses, *s__nothing_looked_up, *s_get, *s__forward, *s_fetcher, *s__fetched_for_usual,
    *s__upstream_query_for, *s_upstream_queries, *s__fetched_usual, *s_upstreams, *s_resolve_later, *s_fetch;

static PyObject *fp_resolve_later(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "resolve_later(pipeline, data, client, udp, send)");
        return NULL;
    }
    PyObject *p = args[0], *data = args[1], *udp = args[3], *send = args[4];
    PyObject *looked = NULL, *q = NULL, *name = NULL, *verdict = NULL, *stats = NULL, *now = NULL, *held = NULL;
    PyObject *tmp = NULL, *fetcher = NULL, *waiter = NULL;
    int t;
    if ((looked = PyObject_GetAttr(p, s__looked_up)) == NULL)
        return NULL;
    if (!PyTuple_CheckExact(looked) || PyTuple_GET_SIZE(looked) != 4 || PyTuple_GET_ITEM(looked, 0) != data ||
        PyTuple_GET_ITEM(looked, 1) == Py_None || PyTuple_GET_ITEM(looked, 2) == Py_None)
        goto by_method_clean;
    PyObject *found = PyTuple_GET_ITEM(looked, 1), *view = PyTuple_GET_ITEM(looked, 2);
    PyObject *client = PyTuple_GET_ITEM(looked, 3);
    { /* len(self._waiting) + len(self._tasks) >= self.max_pending: the method drops it */
        PyObject *w = PyObject_GetAttr(p, s__waiting), *k = w ? PyObject_GetAttr(p, s__tasks) : NULL;
        Py_ssize_t nw = w ? PyObject_Length(w) : -1, nk = k ? PyObject_Length(k) : -1;
        Py_XDECREF(w);
        Py_XDECREF(k);
        long most;
        if (nw < 0 || nk < 0 || attr_long(p, s_max_pending, &most) < 0)
            goto fail;
        if (nw + nk >= most)
            goto by_method_clean;
    }
    if ((tmp = PyObject_GetAttr(p, s__checked_question)) == NULL)
        goto fail;
    PyObject *qargs[2] = {data, found};
    q = PyObject_Vectorcall(tmp, qargs, 2, NULL);
    Py_CLEAR(tmp);
    if (q == NULL)
        goto fail;
    if (!PyTuple_Check(q) || PyTuple_GET_SIZE(q) != 3 || !PyBytes_CheckExact(PyTuple_GET_ITEM(q, 0)) ||
        PyBytes_GET_SIZE(PyTuple_GET_ITEM(q, 0)) < 6)
        goto by_method_clean;
    PyObject *key = PyTuple_GET_ITEM(q, 0);
    const char *kb = PyBytes_AS_STRING(key);
    Py_ssize_t kn = PyBytes_GET_SIZE(key);
    if (kb[kn - 3] != 0 || kb[kn - 2] != 1) /* class IN */
        goto by_method_clean;
    if ((tmp = PyObject_GetAttr(p, s__special_qtypes)) == NULL)
        goto fail;
    PyObject *qtype = PyBytes_FromStringAndSize(kb + kn - 5, 2);
    t = qtype == NULL ? -1 : PySequence_Contains(tmp, qtype);
    Py_XDECREF(qtype);
    Py_CLEAR(tmp);
    if (t != 0)
        goto checked;
    if ((name = PyBytes_FromStringAndSize(kb, kn - 5)) == NULL)
        goto fail;
    { /* name in self.local.wire_names */
        PyObject *local = PyObject_GetAttr(p, s_local);
        if (local != NULL) {
            tmp = PyObject_GetAttr(local, s_wire_names);
            Py_DECREF(local);
        }
        if (tmp == NULL)
            goto fail;
        t = PySequence_Contains(tmp, name);
        Py_CLEAR(tmp);
        if (t != 0)
            goto checked;
    }
    { /* verdict = view.decide(name, self.wall()) */
        PyObject *wall = PyObject_GetAttr(p, s_wall), *when = NULL;
        if (wall != NULL)
            when = PyObject_CallNoArgs(wall);
        Py_XDECREF(wall);
        if (when == NULL)
            goto fail;
        PyObject *dargs[3] = {view, name, when};
        verdict = PyObject_VectorcallMethod(s_decide, dargs, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(when);
        if (verdict == NULL)
            goto fail;
    }
    PyObject *cap = Py_None;
    if (verdict != Py_None) {
        if ((tmp = PyObject_GetAttr(verdict, s_action)) == NULL)
            goto fail;
        t = PyObject_RichCompareBool(tmp, s_allow, Py_NE);
        Py_CLEAR(tmp);
        if (t < 0)
            goto fail;
        if ((tmp = PyObject_GetAttr(verdict, s_ttl_cap)) == NULL)
            goto fail;
        cap = tmp; /* held in tmp until the end */
    }
    /* the method's effects from here: the counts and the looked-up packet forgotten */
    if ((stats = PyObject_GetAttr(p, s_stats)) == NULL || add_count(stats, s_slow_queries, 1) < 0)
        goto fail;
    if ((held = PyObject_GetAttr(p, s__nothing_looked_up)) == NULL || PyObject_SetAttr(p, s__looked_up, held) < 0)
        goto fail;
    Py_CLEAR(held);
    if (verdict != Py_None && t) { /* blocked or rewritten */
        PyObject *vargs[8] = {p, data, q, client, udp, send, view, verdict};
        PyObject *r = PyObject_VectorcallMethod(s__answer_verdict, vargs, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
        goto done;
    }
    if (add_count(stats, s_cache_misses, 1) < 0)
        goto fail;
    /* _forward: now = self.clock(); held = self.cache.get(q.key) */
    {
        PyObject *clock = PyObject_GetAttr(p, s_clock);
        if (clock != NULL)
            now = PyObject_CallNoArgs(clock);
        Py_XDECREF(clock);
        if (now == NULL)
            goto fail;
        PyObject *cache = PyObject_GetAttr(p, s_cache), *get = NULL;
        if (cache != NULL)
            get = PyObject_GetAttr(cache, s_get);
        Py_XDECREF(cache);
        if (get != NULL)
            held = PyObject_CallOneArg(get, key);
        Py_XDECREF(get);
        if (held == NULL)
            goto fail;
    }
    if (held != Py_None) { /* cached meanwhile, or stale: the method's way */
        PyObject *fargs[8] = {p, data, q, client, udp, send, view, cap};
        PyObject *r = PyObject_VectorcallMethod(s__forward, fargs, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
        goto done;
    }
    /* self.fetcher.fetch(q.key, (self._fetched_for_usual, self, data, q, client, udp, send, now, view, cap)) */
    {
        PyObject *ffu = PyObject_GetAttr(p, s__fetched_for_usual);
        if (ffu == NULL || (fetcher = PyObject_GetAttr(p, s_fetcher)) == NULL) {
            Py_XDECREF(ffu);
            goto fail;
        }
        waiter = PyTuple_Pack(10, ffu, p, data, q, client, udp, send, now, view, cap);
        Py_DECREF(ffu);
        if (waiter == NULL)
            goto fail;
        PyObject *waiting = PyObject_GetAttr(fetcher, s_waiting);
        if (waiting == NULL)
            goto fail;
        if (!PyDict_CheckExact(waiting)) {
            Py_DECREF(waiting);
            PyObject *r = PyObject_CallMethodObjArgs(fetcher, s_fetch, key, waiter, NULL);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
            goto done;
        }
        PyObject *waiters = PyDict_GetItemWithError(waiting, key);
        if (waiters != NULL) { /* a fetch under way: wait for it too */
            t = PyList_Append(waiters, waiter);
            Py_DECREF(waiting);
            if (t < 0)
                goto fail;
            goto done;
        }
        PyObject *one = PyErr_Occurred() ? NULL : PyList_New(1);
        if (one != NULL) {
            Py_INCREF(waiter);
            PyList_SET_ITEM(one, 0, waiter);
            t = PyDict_SetItem(waiting, key, one);
            Py_DECREF(one);
        }
        Py_DECREF(waiting);
        if (one == NULL || t < 0)
            goto fail;
        /* packet = self._upstream_query_for(key, self.p.edns_size); the count; the pool's forward */
        PyObject *make = PyObject_GetAttr(fetcher, s__upstream_query_for), *edns = NULL, *packet = NULL;
        if (make != NULL && (edns = PyObject_GetAttr(p, s_edns_size)) != NULL) {
            PyObject *margs[2] = {key, edns};
            packet = PyObject_Vectorcall(make, margs, 2, NULL);
        }
        Py_XDECREF(make);
        Py_XDECREF(edns);
        if (packet == NULL)
            goto fail;
        PyObject *fetched = NULL, *generation = NULL, *done_cb = NULL, *pool = NULL, *qpart = NULL, *r = NULL;
        int ok = add_count(stats, s_upstream_queries, 1) == 0 &&
                 (fetched = PyObject_GetAttr(fetcher, s__fetched_usual)) != NULL &&
                 (generation = PyObject_GetAttr(p, s_generation)) != NULL;
        if (ok) {
            Bound *b = PyObject_GC_NewVar(Bound, &BoundType, 3);
            if ((ok = b != NULL)) {
                b->vectorcall = Bound_vectorcall;
                b->func = Py_NewRef(fetched);
                b->first[0] = Py_NewRef(fetcher);
                b->first[1] = Py_NewRef(key);
                b->first[2] = Py_NewRef(generation);
                PyObject_GC_Track(b);
                done_cb = (PyObject *)b;
            }
        }
        if (ok && (ok = (pool = PyObject_GetAttr(p, s_upstreams)) != NULL) &&
            (ok = (qpart = PyBytes_FromStringAndSize(kb, kn - 1)) != NULL)) {
            PyObject *pargs[4] = {pool, packet, done_cb, qpart};
            r = PyObject_VectorcallMethod(s_forward, pargs, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            ok = r != NULL;
        }
        Py_DECREF(packet);
        Py_XDECREF(fetched);
        Py_XDECREF(generation);
        Py_XDECREF(done_cb);
        Py_XDECREF(pool);
        Py_XDECREF(qpart);
        Py_XDECREF(r);
        if (!ok)
            goto fail;
    }
done:
    Py_DECREF(looked);
    Py_DECREF(q);
    Py_DECREF(name);
    Py_DECREF(verdict);
    Py_XDECREF(stats);
    Py_XDECREF(now);
    Py_XDECREF(held);
    Py_XDECREF(tmp);
    Py_XDECREF(fetcher);
    Py_XDECREF(waiter);
    Py_RETURN_NONE;
checked:
    if (t < 0)
        goto fail;
by_method_clean:
    Py_XDECREF(looked);
    Py_XDECREF(q);
    Py_XDECREF(name);
    return by_class_method(s_resolve_later, args, 5);
fail:
    Py_XDECREF(looked);
    Py_XDECREF(q);
    Py_XDECREF(name);
    Py_XDECREF(verdict);
    Py_XDECREF(stats);
    Py_XDECREF(now);
    Py_XDECREF(held);
    Py_XDECREF(tmp);
    Py_XDECREF(fetcher);
    Py_XDECREF(waiter);
    return NULL;
}

/* Pipeline.answer_cached in C for a miss: a known client, not rate limited, allowed, identified (not a forwarder's
 * query naming a MAC), no alias of the packet in its view, and no cache entry for its question: the packet, the
 * question found and the view are kept for resolve_later (``_looked_up``) and None is returned. Anything else
 * (a hit, a packet without a plain question, a client to check or identify) calls the method, which does the
 * same pure look-ups again (tests/engine/test_miss_twins.py). */
static PyObject *s_access, *s_states, *s_tokens_, *s_allowed_, *s_view_, *s_via_, *s_aliases_, *s__lookup_key,
    *s_answer_cached;

static PyObject *fp_answer_cached(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "answer_cached(pipeline, data, client, udp)");
        return NULL;
    }
    PyObject *p = args[0], *data = args[1], *client = args[2];
    PyObject *st = NULL, *view = NULL, *tmp = NULL, *found = NULL, *looked = NULL;
    int t;
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) < 12 || !PyUnicode_CheckExact(client))
        goto by_method;
    { /* st = self.access.states.get(client): known, not rate limited, allowed, identified */
        PyObject *access = PyObject_GetAttr(p, s_access), *states = NULL;
        if (access != NULL)
            states = PyObject_GetAttr(access, s_states);
        Py_XDECREF(access);
        if (states == NULL)
            return NULL;
        st = PyDict_CheckExact(states) ? PyDict_GetItemWithError(states, client) : NULL;
        Py_XINCREF(st);
        Py_DECREF(states);
        if (st == NULL) {
            if (PyErr_Occurred())
                return NULL;
            goto by_method;
        }
    }
    if ((tmp = PyObject_GetAttr(st, s_tokens_)) == NULL)
        goto fail;
    double tokens = PyFloat_AsDouble(tmp);
    Py_CLEAR(tmp);
    if (tokens == -1.0 && PyErr_Occurred())
        goto fail;
    if (tokens >= 0)
        goto by_method_clean;
    if ((t = attr_true(st, s_allowed_)) <= 0)
        goto checked;
    if ((view = PyObject_GetAttr(st, s_view_)) == NULL)
        goto fail;
    if (view == Py_None)
        goto by_method_clean;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    if (d[10] || d[11]) { /* additional records: a forwarder may name the client's MAC */
        if ((t = attr_true(st, s_via_)) != 0)
            goto checked;
    }
    { /* view.aliases.get(data[2:]): a hit is the method's */
        PyObject *aliases = PyObject_GetAttr(view, s_aliases_), *rest = NULL, *hit = NULL;
        if (aliases != NULL && PyDict_CheckExact(aliases) &&
            (rest = PyBytes_FromStringAndSize((const char *)d + 2, PyBytes_GET_SIZE(data) - 2)) != NULL) {
            hit = PyDict_GetItemWithError(aliases, rest);
            t = hit != NULL ? 1 : PyErr_Occurred() ? -1 : 0;
        } else
            t = aliases == NULL || rest == NULL ? -1 : 1;
        Py_XDECREF(aliases);
        Py_XDECREF(rest);
        if (t != 0)
            goto checked;
    }
    { /* found = self._lookup_key(data, self.edns_size) */
        PyObject *lookup = PyObject_GetAttr(p, s__lookup_key), *edns = NULL;
        if (lookup != NULL && (edns = PyObject_GetAttr(p, s_edns_size)) != NULL) {
            PyObject *largs[2] = {data, edns};
            found = PyObject_Vectorcall(lookup, largs, 2, NULL);
        }
        Py_XDECREF(lookup);
        Py_XDECREF(edns);
        if (found == NULL)
            goto fail;
    }
    if (found != Py_None) { /* cache.get(view.tag + key): an entry is the method's */
        if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3 || !PyBytes_CheckExact(PyTuple_GET_ITEM(found, 0)))
            goto by_method_clean;
        PyObject *tag = PyObject_GetAttr(view, s_tag), *vkey = NULL, *cache = NULL, *get = NULL, *entry = NULL;
        if (tag != NULL && PyBytes_CheckExact(tag)) {
            PyObject *key = PyTuple_GET_ITEM(found, 0);
            vkey = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(tag) + PyBytes_GET_SIZE(key));
            if (vkey != NULL) {
                memcpy(PyBytes_AS_STRING(vkey), PyBytes_AS_STRING(tag), PyBytes_GET_SIZE(tag));
                memcpy(PyBytes_AS_STRING(vkey) + PyBytes_GET_SIZE(tag), PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
            }
        }
        if (vkey != NULL && (cache = PyObject_GetAttr(p, s_cache)) != NULL && (get = PyObject_GetAttr(cache, s_get)))
            entry = PyObject_CallOneArg(get, vkey);
        Py_XDECREF(tag);
        Py_XDECREF(vkey);
        Py_XDECREF(cache);
        Py_XDECREF(get);
        if (entry == NULL)
            goto fail;
        t = entry != Py_None;
        Py_DECREF(entry);
        if (t)
            goto by_method_clean;
    }
    /* a miss: self._looked_up = (data, found or None, view, client); None */
    PyObject *parts[4] = {data, found, view, client};
    if ((looked = PyTuple_Pack(4, parts[0], parts[1], parts[2], parts[3])) == NULL ||
        PyObject_SetAttr(p, s__looked_up, looked) < 0)
        goto fail;
    Py_DECREF(looked);
    Py_DECREF(found);
    Py_DECREF(view);
    Py_DECREF(st);
    Py_RETURN_NONE;
checked:
    if (t < 0)
        goto fail;
by_method_clean:
    Py_XDECREF(st);
    Py_XDECREF(view);
    Py_XDECREF(found);
by_method:
    return by_class_method(s_answer_cached, args, 4);
fail:
    Py_XDECREF(st);
    Py_XDECREF(view);
    Py_XDECREF(found);
    Py_XDECREF(tmp);
    Py_XDECREF(looked);
    return NULL;
}

/* ------------------------------------------------------------------ query-log texts (the writer thread) */

/* A growing ASCII buffer for the query log's texts. */
typedef struct {
    char *buf;
    size_t len, cap;
    char local[512];
} TextBuf;

static void tb_init(TextBuf *t) {
    t->buf = t->local;
    t->len = 0;
    t->cap = sizeof t->local;
}

static void tb_free(TextBuf *t) {
    if (t->buf != t->local)
        PyMem_Free(t->buf);
}

/* Room for n more bytes; 0 (MemoryError set) when out of memory. */
static int tb_room(TextBuf *t, size_t n) {
    if (t->len + n <= t->cap)
        return 1;
    size_t cap = t->cap * 2;
    while (cap < t->len + n)
        cap *= 2;
    char *b = t->buf == t->local ? PyMem_Malloc(cap) : PyMem_Realloc(t->buf, cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    if (t->buf == t->local)
        memcpy(b, t->local, t->len);
    t->buf = b;
    t->cap = cap;
    return 1;
}

static int tb_add(TextBuf *t, const char *s, size_t n) {
    if (!tb_room(t, n))
        return 0;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    return 1;
}

/* bytes.decode("ascii", "backslashreplace") of p[0:n]: ASCII as is, any other byte as \xNN (lower-case hex). */
static int tb_label(TextBuf *t, const unsigned char *p, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (!tb_room(t, (size_t)n * 4))
        return 0;
    char *o = t->buf + t->len;
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = p[k];
        if (c < 0x80) {
            *o++ = (char)c;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    t->len = (size_t)(o - t->buf);
    return 1;
}

static PyObject *tb_text(TextBuf *t) {
    PyObject *s = PyUnicode_New((Py_ssize_t)t->len, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), t->buf, t->len);
    tb_free(t);
    return s;
}

static PyObject *cut_short(TextBuf *t) {
    tb_free(t);
    PyErr_SetString(PyExc_ValueError, "message cut short or damaged");
    return NULL;
}

/* wire.key_name: the name of a cache key as text (labels joined by ".", odd bytes as \xNN); ValueError where
 * Python raises IndexError (a key whose name runs past its end). */
static PyObject *key_text(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    TextBuf t;
    tb_init(&t);
    for (;;) {
        if (i >= n)
            return cut_short(&t);
        Py_ssize_t ln = p[i];
        if (ln == 0)
            break;
        if (i > 0 && !tb_add(&t, ".", 1)) {
            tb_free(&t);
            return NULL;
        }
        Py_ssize_t end = i + 1 + ln < n ? i + 1 + ln : n;    /* a slice stops at the end */
        if (!tb_label(&t, p + i + 1, end - (i + 1))) {
            tb_free(&t);
            return NULL;
        }
        i += ln + 1;
    }
    return tb_text(&t);
}

static PyObject *fp_key_name(PyObject *Py_UNUSED(mod), PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "key_name: bytes expected");
        return NULL;
    }
    return key_text((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
}

/* wire.read_name into t: the name at i (pointers followed, at most 32 hops; "." for the root); 0 when Python
 * raises (read past the end) or out of memory (MemoryError set). */
static int read_name_into(TextBuf *t, const unsigned char *p, Py_ssize_t n, Py_ssize_t i, int *failed) {
    int hops = 0, labels = 0;
    while (hops < 32) {
        if (i >= n)
            return *failed = 1, 0;
        unsigned char ln = p[i];
        if (ln == 0)
            break;
        if (ln >= 0xC0) {
            if (i + 1 >= n)
                return *failed = 1, 0;
            i = (Py_ssize_t)(ln & 0x3F) << 8 | p[i + 1];
            hops++;
            continue;
        }
        if (labels++ && !tb_add(t, ".", 1))
            return 0;
        Py_ssize_t end = i + 1 + ln < n ? i + 1 + ln : n;
        if (!tb_label(t, p + i + 1, end - (i + 1)))
            return 0;
        i += ln + 1;
    }
    return labels || tb_add(t, ".", 1);
}

static const char *type_name(unsigned int rtype) {
    switch (rtype) {
    case 1: return "A";
    case 2: return "NS";
    case 5: return "CNAME";
    case 6: return "SOA";
    case 12: return "PTR";
    case 13: return "HINFO";
    case 15: return "MX";
    case 16: return "TXT";
    case 28: return "AAAA";
    case 33: return "SRV";
    case 39: return "DNAME";
    case 64: return "SVCB";
    case 65: return "HTTPS";
    default: return NULL;
    }
}

/* wire.summarise_answers(packet): "A 192.0.2.1, CNAME x.example" from the answer section (the first three
 * records, then "+N"); ValueError wherever the Python walk raises IndexError, ValueError or struct.error. */
static PyObject *summarise(const unsigned char *p, Py_ssize_t n) {
    const Py_ssize_t limit = 3;
    TextBuf t;
    tb_init(&t);
    if (n < 8)
        return cut_short(&t);
    Py_ssize_t an = (Py_ssize_t)rd16(p + 6);
    Py_ssize_t i = walk_name(p, n, 12);
    if (i < 0)
        return cut_short(&t);
    i += 4;
    for (Py_ssize_t k = 0; k < an; k++) {
        i = walk_name(p, n, i);
        if (i < 0 || i + 10 > n)
            return cut_short(&t);
        unsigned int rtype = rd16(p + i), rdlen = rd16(p + i + 8);
        Py_ssize_t rdata = i + 10;
        if (k < limit) {
            char text[64];
            const char *name = type_name(rtype);
            if (name == NULL) {
                snprintf(text, sizeof text, "TYPE%u", rtype);
                name = text;
            }
            if (k > 0 && !tb_add(&t, ", ", 2)) {
                tb_free(&t);
                return NULL;
            }
            int ok = 1, failed = 0;
            if ((rtype == 1 && rdlen == 4) || (rtype == 28 && rdlen == 16)) {
                char addr[INET6_ADDRSTRLEN];
                if (rdata + (Py_ssize_t)rdlen > n)
                    return cut_short(&t);
                if (inet_ntop(rtype == 1 ? AF_INET : AF_INET6, p + rdata, addr, sizeof addr) == NULL)
                    return cut_short(&t);
                ok = tb_add(&t, name, strlen(name)) && tb_add(&t, " ", 1) && tb_add(&t, addr, strlen(addr));
            } else if (rtype == 2 || rtype == 5 || rtype == 12 || rtype == 39 || rtype == 15) {
                ok = tb_add(&t, name, strlen(name)) && tb_add(&t, " ", 1)
                     && read_name_into(&t, p, n, rtype == 15 ? rdata + 2 : rdata, &failed);
                if (failed)
                    return cut_short(&t);
            } else {
                ok = tb_add(&t, name, strlen(name));
            }
            if (!ok) {
                tb_free(&t);
                return NULL;
            }
        }
        i = rdata + rdlen;
    }
    if (an > limit) {
        char more[32];
        int m = snprintf(more, sizeof more, "%s+%zd", limit > 0 ? ", " : "", an - limit);
        if (!tb_add(&t, more, (size_t)m)) {
            tb_free(&t);
            return NULL;
        }
    }
    return tb_text(&t);
}

static PyObject *fp_summarise_answers(PyObject *Py_UNUSED(mod), PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "summarise_answers: bytes expected");
        return NULL;
    }
    return summarise((const unsigned char *)PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg));
}

/* answers.summarise_entry: the summary of a cache entry's reply as CacheEntry.packet() puts it together (ID 0,
 * head, the question of its untagged key, tail), without making the packet's bytes object. */
static PyObject *fp_summarise_entry(PyObject *Py_UNUSED(mod), PyObject *entry) {
    PyObject *parts[3] = {NULL, NULL, NULL};
    PyObject *out = NULL;
    if ((parts[0] = PyObject_GetAttr(entry, s_head)) == NULL || (parts[1] = PyObject_GetAttr(entry, s_key)) == NULL
        || (parts[2] = PyObject_GetAttr(entry, s_tail)) == NULL)
        goto done;
    if (!PyBytes_Check(parts[0]) || !PyBytes_Check(parts[1]) || !PyBytes_Check(parts[2])) {
        PyErr_SetString(PyExc_TypeError, "summarise_entry: head, key and tail must be bytes");
        goto done;
    }
    const char *key = PyBytes_AS_STRING(parts[1]);
    Py_ssize_t klen = PyBytes_GET_SIZE(parts[1]);
    if (klen > 0 && (unsigned char)key[0] >= 0xC0) {   /* untagged(): a view tag is the key's first two bytes */
        key += klen >= 2 ? 2 : klen;
        klen -= klen >= 2 ? 2 : klen;
    }
    if (klen > 0)
        klen--;                                          /* the flags byte */
    Py_ssize_t hlen = PyBytes_GET_SIZE(parts[0]), tlen = PyBytes_GET_SIZE(parts[2]);
    Py_ssize_t n = 2 + hlen + klen + tlen;
    unsigned char local[2048];
    unsigned char *buf = n <= (Py_ssize_t)sizeof local ? local : PyMem_Malloc((size_t)n);
    if (buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    buf[0] = buf[1] = 0;
    memcpy(buf + 2, PyBytes_AS_STRING(parts[0]), (size_t)hlen);
    memcpy(buf + 2 + hlen, key, (size_t)klen);
    memcpy(buf + 2 + hlen + klen, PyBytes_AS_STRING(parts[2]), (size_t)tlen);
    out = summarise(buf, n);
    if (buf != local)
        PyMem_Free(buf);
done:
    Py_XDECREF(parts[0]);
    Py_XDECREF(parts[1]);
    Py_XDECREF(parts[2]);
    return out;
}

/* (name, qtype) of a cache key (from byte ``skip`` on: 2 past a view tag), memoised in ``names`` under ``memo``:
 * querylog.query_rows' step; IndexError for a key too short for its type, as Python's key[-5]. */
static PyObject *name_and_type(PyObject *names, PyObject *memo, PyObject *key, int untag) {
    PyObject *nq = PyDict_GetItemWithError(names, memo);
    if (nq != NULL) {
        Py_INCREF(nq);
        return nq;
    }
    if (PyErr_Occurred())
        return NULL;
    if (!PyBytes_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "query_rows: a cache key must be bytes");
        return NULL;
    }
    const unsigned char *k = (const unsigned char *)PyBytes_AS_STRING(key);
    Py_ssize_t n = PyBytes_GET_SIZE(key);
    if (untag && n > 0 && k[0] >= 0xC0) {
        Py_ssize_t cut = n >= 2 ? 2 : n;
        k += cut;
        n -= cut;
    }
    PyObject *name = key_text(k, n);
    if (name == NULL)
        return NULL;
    if (n < 5) {
        Py_DECREF(name);
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    nq = Py_BuildValue("(Nl)", name, (long)(k[n - 5] << 8 | k[n - 4]));
    if (nq == NULL || PyDict_SetItem(names, memo, nq) < 0) {
        Py_XDECREF(nq);
        return NULL;
    }
    return nq;
}

/* answers.describe(entry, summarise_entry): the entry's summary, made (and kept) when it has none yet; "?" for a
 * reply too damaged to describe. */
static PyObject *entry_summary(PyObject *entry) {
    PyObject *text = PyObject_GetAttr(entry, s_summary);
    if (text == NULL || text != Py_None)
        return text;
    Py_DECREF(text);
    text = fp_summarise_entry(NULL, entry);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL;
        PyErr_Clear();
        text = PyUnicode_FromString("?");
        if (text == NULL)
            return NULL;
    }
    if (PyObject_SetAttr(entry, s_summary, text) < 0) {
        Py_DECREF(text);
        return NULL;
    }
    return text;
}

/* querylog.query_rows(batch, wall, names, key_name, summarise_entry) in C (the same rows, the same memo and
 * summaries kept on the entries): the query log's ring entries as rows (ts, client, qname, qtype, rcode,
 * answer, upstream, latency, cached, reason). */
static PyObject *fp_query_rows(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[0]) || !PyDict_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "query_rows(batch: list, wall: float, names: dict)");
        return NULL;
    }
    PyObject *batch = args[0], *wall = args[1], *names = args[2];
    Py_ssize_t count = PyList_GET_SIZE(batch);
    PyObject *rows = PyList_New(count);
    if (rows == NULL)
        return NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *item = PyList_GET_ITEM(batch, r);
        PyObject *ts = NULL, *nq = NULL, *answer = NULL, *rcode = NULL, *reason = NULL, *row = NULL;
        if (!PyTuple_Check(item) || (PyTuple_GET_SIZE(item) != 3 && PyTuple_GET_SIZE(item) != 9)) {
            PyErr_SetString(PyExc_ValueError, "query_rows: a ring entry is a tuple of 3 or 9");
            goto fail;
        }
        ts = PyNumber_Add(PyTuple_GET_ITEM(item, 0), wall);
        if (ts == NULL)
            goto fail;
        if (PyTuple_GET_SIZE(item) == 3) {               /* a cache hit: (now, client, entry) */
            PyObject *entry = PyTuple_GET_ITEM(item, 2);
            PyObject *key = PyObject_GetAttr(entry, s_key);
            if (key == NULL)
                goto fail;
            nq = name_and_type(names, key, key, 1);
            Py_DECREF(key);
            if (nq == NULL || (answer = entry_summary(entry)) == NULL
                || (rcode = PyObject_GetAttr(entry, s_rcode)) == NULL
                || (reason = PyObject_GetAttr(entry, s_reason)) == NULL)
                goto fail;
            if (!PyTuple_Check(nq) || PyTuple_GET_SIZE(nq) < 2) {
                PyErr_SetString(PyExc_TypeError, "query_rows: names holds (name, qtype) pairs");
                goto fail;
            }
            row = PyTuple_Pack(10, ts, PyTuple_GET_ITEM(item, 1), PyTuple_GET_ITEM(nq, 0), PyTuple_GET_ITEM(nq, 1),
                               rcode, answer, s_empty, s_zero, Py_True, reason);
        } else {                                         /* (now, client, question, rcode, answer, ...) */
            PyObject *q = PyTuple_GET_ITEM(item, 2), *a = PyTuple_GET_ITEM(item, 4);
            PyObject *name, *qtype;
            if (PyBytes_CheckExact(q)) {
                if ((nq = name_and_type(names, q, q, 0)) == NULL)
                    goto fail;
            } else {
                Py_INCREF(q);
                nq = q;
            }
            if (PyTuple_CheckExact(nq) && PyTuple_GET_SIZE(nq) >= 2) {
                name = PyTuple_GET_ITEM(nq, 0);
                qtype = PyTuple_GET_ITEM(nq, 1);
                Py_INCREF(name);
                Py_INCREF(qtype);
            } else if ((name = PySequence_GetItem(nq, 0)) == NULL) {
                goto fail;
            } else if ((qtype = PySequence_GetItem(nq, 1)) == NULL) {
                Py_DECREF(name);
                goto fail;
            }
            if (PyUnicode_CheckExact(a)) {
                Py_INCREF(a);
                answer = a;
            } else {
                answer = entry_summary(a);
            }
            if (answer != NULL)
                row = PyTuple_Pack(10, ts, PyTuple_GET_ITEM(item, 1), name, qtype, PyTuple_GET_ITEM(item, 3), answer,
                                   PyTuple_GET_ITEM(item, 5), PyTuple_GET_ITEM(item, 6), PyTuple_GET_ITEM(item, 7),
                                   PyTuple_GET_ITEM(item, 8));
            Py_DECREF(name);
            Py_DECREF(qtype);
        }
        if (row == NULL)
            goto fail;
        PyList_SET_ITEM(rows, r, row);
        Py_DECREF(ts);
        Py_DECREF(nq);
        Py_DECREF(answer);
        Py_XDECREF(rcode);
        Py_XDECREF(reason);
        continue;
    fail:
        Py_XDECREF(ts);
        Py_XDECREF(nq);
        Py_XDECREF(answer);
        Py_XDECREF(rcode);
        Py_XDECREF(reason);
        Py_DECREF(rows);
        return NULL;
    }
    return rows;
}

static PyMethodDef fastpath_functions[] = {
    {"send_batch", fp_send_batch, METH_VARARGS,
     "send_batch(fd, items) -> [(index, errno)]: send bytes (connected) or (bytes, address) items with sendmmsg"},
    {"recv_batch", fp_recv_batch, METH_VARARGS, "recv_batch(fd, most) -> [bytes]: read datagrams with recvmmsg"},
    {"reply_parts", (PyCFunction)(void (*)(void))fp_reply_parts, METH_FASTCALL,
     "reply_parts(reply, key, edns_size, min_ttl, max_ttl, negative_max_ttl) -> (head, tail, offsets, ttls, ttl, "
     "rcode, cnames) or None: wire.reply_parts in C"},
    {"cname_targets", fp_cname_targets, METH_O, "cname_targets(packet) -> (wire name, ...): wire.cname_targets in C"},
    {"lookup_key", (PyCFunction)(void (*)(void))fp_lookup_key, METH_FASTCALL,
     "lookup_key(data, edns_cap) -> (key, qend, limit) or None: wire.lookup_key in C"},
    {"checked_question", (PyCFunction)(void (*)(void))fp_checked_question, METH_FASTCALL,
     "checked_question(Question, data, found) -> Question or None: wire.checked_question in C"},
    {"upstream_query_for", (PyCFunction)(void (*)(void))fp_upstream_query_for, METH_FASTCALL,
     "upstream_query_for(key, edns_size) -> bytes: answers.upstream_query_for in C (the ID from getentropy)"},
    {"match_replies", (PyCFunction)(void (*)(void))fp_match_replies, METH_FASTCALL,
     "match_replies(pending, replies) -> int: transports.match_replies in C"},
    {"reply_entry", (PyCFunction)(void (*)(void))fp_reply_entry, METH_FASTCALL,
     "reply_entry(CacheEntry, reply, key, edns_size, min_ttl, max_ttl, negative_max_ttl, now, stale_for, upstream) "
     "-> entry or None: fetcher.reply_entry in C"},
    {"derive", (PyCFunction)(void (*)(void))fp_derive, METH_FASTCALL,
     "derive(entry, now, cap) -> entry: CacheEntry.derive, in C for a copy made the moment the answer came"},
    {"entry_reply", (PyCFunction)(void (*)(void))fp_entry_reply, METH_FASTCALL,
     "entry_reply(entry, query, qend, now) -> bytes: CacheEntry.reply in C"},
    {"answer_cached", (PyCFunction)(void (*)(void))fp_answer_cached, METH_FASTCALL,
     "answer_cached(pipeline, data, client, udp): Pipeline.answer_cached in C for a miss"},
    {"resolve_later", (PyCFunction)(void (*)(void))fp_resolve_later, METH_FASTCALL,
     "resolve_later(pipeline, data, client, udp, send): Pipeline.resolve_later in C for the usual miss"},
    {"forward_reply", (PyCFunction)(void (*)(void))fp_forward_reply, METH_FASTCALL,
     "forward_reply(forward, result): _Forward.on_reply in C for the usual reply"},
    {"forward_udp", (PyCFunction)(void (*)(void))fp_forward_udp, METH_FASTCALL,
     "forward_udp(pool, Forward, UDPTransport, BatchedEndpoint, packet, done, question=None): UpstreamPool.forward "
     "in C for the usual first try"},
    {"fetched", (PyCFunction)(void (*)(void))fp_fetched, METH_FASTCALL,
     "fetched(fetcher, key, generation, reply, upstream, error): Fetcher._fetched in C for the usual reply"},
    {"fetched_for", (PyCFunction)(void (*)(void))fp_fetched_for, METH_FASTCALL,
     "fetched_for(pipeline, data, q, client, udp, send, started, view, cap, entry, error): Pipeline._fetched_for "
     "in C for the usual answer"},
    {"cache_put", (PyCFunction)(void (*)(void))fp_cache_put, METH_FASTCALL,
     "cache_put(cache, key, entry) -> the entry replaced or None: AnswerCache.put in C"},
    {"key_name", fp_key_name, METH_O, "key_name(key) -> str: wire.key_name in C (ValueError for a damaged key)"},
    {"summarise_answers", fp_summarise_answers, METH_O,
     "summarise_answers(packet) -> str: wire.summarise_answers in C (ValueError for a damaged reply)"},
    {"query_rows", (PyCFunction)(void (*)(void))fp_query_rows, METH_FASTCALL,
     "query_rows(batch, wall, names) -> [row]: querylog.query_rows in C (key_name, summarise_entry in C)"},
    {"summarise_entry", fp_summarise_entry, METH_O,
     "summarise_entry(entry) -> str: answers.summarise_entry in C (ValueError for a damaged reply)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "Hearth's optional compiled UDP cache-hit path (see listener.py).", -1,
    fastpath_functions, NULL, NULL, NULL, NULL,
};


#define INTERN(var, text)                                                                                             \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                             \
        return NULL;

PyMODINIT_FUNC PyInit__fastpath(void) {
    INTERN(s_tokens, "tokens");
    INTERN(s_allowed, "allowed");
    INTERN(s_view, "view");
    INTERN(s_via, "via");
    INTERN(s_aliases, "aliases");
    INTERN(s_expires, "expires");
    INTERN(s_gen, "gen");
    INTERN(s_stored, "stored");
    INTERN(s_age, "age");
    INTERN(s_prefetch_at, "prefetch_at");
    INTERN(s_synthesized, "synthesized");
    INTERN(s_head, "head");
    INTERN(s_key, "key");
    INTERN(s_tail, "tail");
    INTERN(s_summary, "summary");
    INTERN(s_rcode, "rcode");
    INTERN(s_reason, "reason");
    INTERN(s_empty, "");
    if ((s_zero = PyFloat_FromDouble(0.0)) == NULL)
        return NULL;
    if ((c_empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL || (c_zero_int = PyLong_FromLong(0)) == NULL ||
        (c_point_nine = PyFloat_FromDouble(0.9)) == NULL || (c_ten = PyLong_FromLong(10)) == NULL ||
        (c_empty_tuple = PyTuple_New(0)) == NULL)
        return NULL;
    INTERN(s_patched, "patched");
    INTERN(s_size, "size");
    INTERN(s__entries, "_entries");
    INTERN(s__unalias, "_unalias");
    INTERN(s_seen, "seen");
    INTERN(s_clock, "clock");
    INTERN(s_evictions, "evictions");
    if ((c_one_int = PyLong_FromLong(1)) == NULL)
        return NULL;
    INTERN(s_hits, "hits");
    INTERN(s_cache_hits, "cache_hits");
    INTERN(s_config, "config");
    INTERN(s_enabled, "enabled");
    INTERN(s_ring, "ring");
    INTERN(s_maxlen, "maxlen");
    INTERN(s_append, "append");
    INTERN(s_dropped, "dropped");
    INTERN(s__closed, "_closed");
    INTERN(s__loop, "_loop");
    INTERN(s_is_running, "is_running");
    INTERN(s__failover_order, "_failover_order");
    INTERN(s_strategy, "strategy");
    INTERN(s_attempts, "attempts");
    INTERN(s_transport, "transport");
    INTERN(s__live, "_live");
    INTERN(s__opening, "_opening");
    INTERN(s__size, "_size");
    INTERN(s__turn, "_turn");
    INTERN(s__max_uses, "_max_uses");
    INTERN(s_pending, "pending");
    INTERN(s_uses, "uses");
    INTERN(s_retired, "retired");
    INTERN(s_outbox, "outbox");
    INTERN(s_waiting_send, "waiting_send");
    INTERN(s_call_soon, "call_soon");
    INTERN(s__flush, "_flush");
    INTERN(s_loop, "loop");
    INTERN(s_on_reply, "on_reply");
    INTERN(s__deadlines, "_deadlines");
    INTERN(s_live, "live");
    INTERN(s_serial, "serial");
    INTERN(s_queue, "queue");
    INTERN(s_timeout, "timeout");
    INTERN(s_handle, "handle");
    INTERN(s_tick, "tick");
    INTERN(s__check, "_check");
    INTERN(s_call_later, "call_later");
    INTERN(s_time, "time");
    INTERN(s_queries, "queries");
    INTERN(s_pool, "pool");
    INTERN(s_packet, "packet");
    INTERN(s_done, "done");
    INTERN(s_question, "question");
    INTERN(s_order, "order");
    INTERN(s_attempt, "attempt");
    INTERN(s_upstream, "upstream");
    INTERN(s_started, "started");
    INTERN(s_armed, "armed");
    INTERN(s_token, "token");
    INTERN(s_forward, "forward");
    INTERN(s_remove, "remove");
    INTERN(s_fastest, "fastest");
    INTERN(s_finished, "finished");
    INTERN(s_tcp, "tcp");
    INTERN(s_ewma, "ewma");
    INTERN(s_ewma_alpha, "ewma_alpha");
    INTERN(s_rcode_failures, "rcode_failures");
    INTERN(s_healthy, "healthy");
    INTERN(s_down_since, "down_since");
    INTERN(s__recovered, "_recovered");
    INTERN(s_spec, "spec");
    INTERN(s_url, "url");
    INTERN(s_pop, "pop");
    INTERN(s__looked_up, "_looked_up");
    INTERN(s__waiting, "_waiting");
    INTERN(s__tasks, "_tasks");
    INTERN(s_max_pending, "max_pending");
    INTERN(s__checked_question, "_checked_question");
    INTERN(s__special_qtypes, "_special_qtypes");
    INTERN(s_local, "local");
    INTERN(s_wire_names, "wire_names");
    INTERN(s_decide, "decide");
    INTERN(s_wall, "wall");
    INTERN(s_action, "action");
    INTERN(s_ttl_cap, "ttl_cap");
    INTERN(s__answer_verdict, "_answer_verdict");
    INTERN(s_slow_queries, "slow_queries");
    INTERN(s_cache_misses, "cache_misses");
    INTERN(s__nothing_looked_up, "_nothing_looked_up");
    INTERN(s_get, "get");
    INTERN(s__forward, "_forward");
    INTERN(s_fetcher, "fetcher");
    INTERN(s__fetched_for_usual, "_fetched_for_usual");
    INTERN(s__upstream_query_for, "_upstream_query_for");
    INTERN(s_upstream_queries, "upstream_queries");
    INTERN(s__fetched_usual, "_fetched_usual");
    INTERN(s_upstreams, "upstreams");
    INTERN(s_resolve_later, "resolve_later");
    INTERN(s_fetch, "fetch");
    INTERN(s_allow, "allow");
    INTERN(s_access, "access");
    INTERN(s_states, "states");
    INTERN(s_tokens_, "tokens");
    INTERN(s_allowed_, "allowed");
    INTERN(s_view_, "view");
    INTERN(s_via_, "via");
    INTERN(s_aliases_, "aliases");
    INTERN(s__lookup_key, "_lookup_key");
    INTERN(s_answer_cached, "answer_cached");
    INTERN(s__fetched, "_fetched");
    INTERN(s__reply_entry, "_reply_entry");
    INTERN(s_p, "p");
    INTERN(s_edns_size, "edns_size");
    INTERN(s_min_ttl, "min_ttl");
    INTERN(s_max_ttl, "max_ttl");
    INTERN(s_negative_max_ttl, "negative_max_ttl");
    INTERN(s_serve_stale, "serve_stale");
    INTERN(s_copies, "copies");
    INTERN(s_replace_copies, "replace_copies");
    INTERN(s_waiting, "waiting");
    INTERN(s__waiter_failed, "_waiter_failed");
    INTERN(s__fetched_for, "_fetched_for");
    INTERN(s__send_entry, "_send_entry");
    INTERN(s_generation, "generation");
    INTERN(s_tag, "tag");
    INTERN(s_cache, "cache");
    INTERN(s_put, "put");
    INTERN(s_stats, "stats");
    INTERN(s_latency, "latency");
    INTERN(s__latency_buckets, "_latency_buckets");
    INTERN(s_querylog, "querylog");
    INTERN(s_record, "record");
    if (PyType_Ready(&UdpBatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (m == NULL)
        return NULL;
    if (PyType_Ready(&BoundType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&BoundType);
    if (PyModule_AddObject(m, "bound", (PyObject *)&BoundType) < 0) {
        Py_DECREF(&BoundType);
        Py_DECREF(m);
        return NULL;
    }
    if ((forward_reply_fn = PyObject_GetAttrString(m, "forward_reply")) == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&UdpBatchType);
    if (PyModule_AddObject(m, "UdpBatch", (PyObject *)&UdpBatchType) < 0) {
        Py_DECREF(&UdpBatchType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "SLOT", SLOT);
    return m;
}

/* The compiled blocklist index's lookup in C (optional, issue 19): BlockIndex.lookup_wire's hashing and
 * table search over the same mapped sections (blocklists/index_format.py describes the layout).
 *
 * Tables(buffer, ...) holds one buffer export of the index file (the mmap or the bytes) and the offsets of its
 * sections, checked once here; Tables.lookup(name_wire, cat, amask) parses and lower-cases the wire name,
 * hashes each suffix of the plan with BLAKE2s (8-byte digest, as hashlib.blake2s(digest_size=8)), searches
 * the block keys (and, when something blocks and the index has allow rules, the allow keys) and the
 * single-label dicts exactly as index._decide does, and returns:
 *   None                       the wire name is malformed (never blocked)
 *   0                          nothing blocks it by hash or single label (regexes are the caller's)
 *   (w, offs, found, allows)   the lower-cased wire name, the label offsets and the matches, as Python has them
 *   NotImplemented             a name this code does not take (over 128 labels or 1,024 bytes, not bytes):
 *                              the caller runs the pure-Python lookup
 * Every read of the file's tables is bounds-checked against the buffer: a crafted index cannot make it read
 * outside (a directory or mask index out of range was refused by the constructor or counts as no match).
 * tests/blocklists/test_index_accel.py holds it to the Python code's results. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <math.h>

#define MAX_LABELS 128
#define MAX_WIRE 1024
#define TAG_SUB 1u
#define CATEGORY_BITS 0x7FFFFFFFu

/* ---------------------------------------------------------------- BLAKE2s (RFC 7693), 8-byte digest */

static const uint32_t B2S_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                   0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

static const uint8_t B2S_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

#define ROTR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define B2S_G(a, b, c, d, x, y)                                                                                        \
    do {                                                                                                               \
        v[a] = v[a] + v[b] + (x);                                                                                      \
        v[d] = ROTR32(v[d] ^ v[a], 16);                                                                                \
        v[c] = v[c] + v[d];                                                                                            \
        v[b] = ROTR32(v[b] ^ v[c], 12);                                                                                \
        v[a] = v[a] + v[b] + (y);                                                                                      \
        v[d] = ROTR32(v[d] ^ v[a], 8);                                                                                 \
        v[c] = v[c] + v[d];                                                                                            \
        v[b] = ROTR32(v[b] ^ v[c], 7);                                                                                 \
    } while (0)

static inline uint32_t load32_le(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void b2s_compress(uint32_t h[8], const unsigned char block[64], uint64_t t, int last) {
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = load32_le(block + 4 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = B2S_IV[i];
    }
    v[12] ^= (uint32_t)t;
    v[13] ^= (uint32_t)(t >> 32);
    if (last)
        v[14] = ~v[14];
    for (int r = 0; r < 10; r++) {
        const uint8_t *s = B2S_SIGMA[r];
        B2S_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2S_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2S_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2S_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2S_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2S_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2S_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2S_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* int.from_bytes(blake2s(data, digest_size=8).digest(), "little") */
static uint64_t name_hash64(const unsigned char *data, size_t len) {
    uint32_t h[8];
    unsigned char block[64];
    memcpy(h, B2S_IV, sizeof h);
    h[0] ^= 0x01010000u ^ 8u; /* depth 1, fanout 1, no key, digest length 8 */
    uint64_t t = 0;
    while (len > 64) {
        t += 64;
        b2s_compress(h, data, t, 0);
        data += 64;
        len -= 64;
    }
    memset(block, 0, sizeof block);
    memcpy(block, data, len);
    t += len;
    b2s_compress(h, block, t, 1);
    return (uint64_t)h[0] | ((uint64_t)h[1] << 32);
}

/* ---------------------------------------------------------------- the tables */

typedef struct {
    const unsigned char *keys; /* n x u64 */
    const unsigned char *midx; /* n x width */
    const unsigned char *dir;  /* (2**bits + 1) x u32 */
    uint32_t n;
    int shift; /* 64 - directory bits */
} Table;

typedef struct {
    PyObject_HEAD
    Py_buffer buf;
    int held;
    Table block, allow;
    const unsigned char *pal;
    uint32_t npal;
    int width;
    int has_allow;
    unsigned char plan[MAX_LABELS + 2]; /* plan[d]: suffixes of d labels are hashed */
    PyObject *sblock, *sallow;          /* {last label bytes: ((tag, mask), ...)} */
} Tables;

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8); /* the writer's native order, as the file's byte-order mark guarantees */
    return v;
}

static inline uint32_t load32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint32_t load_midx(const Tables *t, const Table *tb, uint32_t i) {
    const unsigned char *p = tb->midx + (size_t)i * t->width;
    if (t->width == 1)
        return p[0];
    if (t->width == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    return load32(p);
}

static int take_table(Tables *self, Table *tb, Py_ssize_t koff, Py_ssize_t n, Py_ssize_t moff, Py_ssize_t doff,
                      int bits) {
    Py_ssize_t size = self->buf.len;
    if (n < 0 || n > 0xFFFFFFFFLL || bits < 0 || bits > 24 || koff < 0 || moff < 0 || doff < 0)
        goto bad;
    Py_ssize_t ndir = ((Py_ssize_t)1 << bits) + 1;
    if (koff > size || n * 8 > size - koff || moff > size || n * self->width > size - moff || doff > size ||
        ndir * 4 > size - doff)
        goto bad;
    const unsigned char *base = (const unsigned char *)self->buf.buf;
    tb->keys = base + koff;
    tb->midx = base + moff;
    tb->dir = base + doff;
    tb->n = (uint32_t)n;
    tb->shift = 64 - bits;
    /* every bucket inside the table, in order: a lookup then never leaves it */
    uint32_t prev = 0;
    for (Py_ssize_t i = 0; i < ndir; i++) {
        uint32_t d = load32(tb->dir + 4 * i);
        if (d < prev || d > tb->n)
            goto bad;
        prev = d;
    }
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "index tables out of range");
    return -1;
}

static void Tables_release_buffer(Tables *self) {
    if (self->held) {
        self->held = 0;
        PyBuffer_Release(&self->buf);
    }
}

static void Tables_dealloc(Tables *self) {
    Tables_release_buffer(self);
    Py_CLEAR(self->sblock);
    Py_CLEAR(self->sallow);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Tables_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *obj, *sblock, *sallow;
    Py_ssize_t bk, nb, bm, bd, ak, na, am, ad, po, np_;
    int db, da, width, has_allow;
    const char *plan;
    Py_ssize_t plan_len;
    static char *kwlist[] = {"buffer", "block_keys", "nb", "block_masks", "block_dir", "block_bits",
                             "allow_keys", "na", "allow_masks", "allow_dir", "allow_bits", "palette", "np",
                             "width", "plan", "single_block", "single_allow", "has_allow", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Onnnnin" "nnninni" "y#O!O!p", kwlist, &obj, &bk, &nb, &bm, &bd,
                                     &db, &ak, &na, &am, &ad, &da, &po, &np_, &width, &plan, &plan_len,
                                     &PyDict_Type, &sblock, &PyDict_Type, &sallow, &has_allow))
        return NULL;
    if (width != 1 && width != 2 && width != 4) {
        PyErr_SetString(PyExc_ValueError, "mask width must be 1, 2 or 4");
        return NULL;
    }
    if (plan_len != MAX_LABELS + 2) {
        PyErr_SetString(PyExc_ValueError, "plan must be 130 bytes");
        return NULL;
    }
    Tables *self = (Tables *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (PyObject_GetBuffer(obj, &self->buf, PyBUF_SIMPLE) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->held = 1;
    self->width = width;
    self->has_allow = has_allow;
    memcpy(self->plan, plan, sizeof self->plan);
    Py_INCREF(sblock);
    self->sblock = sblock;
    Py_INCREF(sallow);
    self->sallow = sallow;
    if (take_table(self, &self->block, bk, nb, bm, bd, db) < 0 || take_table(self, &self->allow, ak, na, am, ad, da) < 0)
        goto fail;
    if (po < 0 || np_ < 0 || np_ > 0xFFFFFFFFLL || po > self->buf.len || np_ * 4 > self->buf.len - po) {
        PyErr_SetString(PyExc_ValueError, "index palette out of range");
        goto fail;
    }
    self->pal = (const unsigned char *)self->buf.buf + po;
    self->npal = (uint32_t)np_;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyObject *Tables_release(Tables *self, PyObject *unused) {
    Tables_release_buffer(self);
    Py_RETURN_NONE;
}

/* index._scan: append (j, bits, tag) of every entry of `tb` matching suffix js[n] with key hs[n]; stop after the
 * first when `stop`. Returns the list (created on the first match, *out stays NULL when none), -1 on error. */
static int scan(const Tables *t, const Table *tb, const int *js, const uint64_t *hs, int count, uint32_t cat,
                int stop, PyObject **out) {
    for (int n = 0; n < count; n++) {
        uint64_t h = hs[n];
        int j = js[n];
        uint64_t b = tb->shift >= 64 ? 0 : h >> tb->shift;
        uint32_t lo = load32(tb->dir + 4 * b), hi = load32(tb->dir + 4 * (b + 1));
        while (lo < hi) { /* bisect_left */
            uint32_t mid = lo + (hi - lo) / 2;
            if (load64(tb->keys + 8 * (size_t)mid) < h)
                lo = mid + 1;
            else
                hi = mid;
        }
        hi = load32(tb->dir + 4 * (b + 1));
        for (uint32_t i = lo; i < hi; i++) {
            uint64_t k = load64(tb->keys + 8 * (size_t)i);
            if (k - h > 3)
                break;
            if (j == 0 || (k & TAG_SUB)) {
                uint32_t m = load_midx(t, tb, i);
                uint32_t bits = m < t->npal ? load32(t->pal + 4 * (size_t)m) & cat : 0;
                if (bits) {
                    if (*out == NULL && (*out = PyList_New(0)) == NULL)
                        return -1;
                    PyObject *item = Py_BuildValue("(iIi)", j, bits, (int)(k & 3));
                    if (item == NULL || PyList_Append(*out, item) < 0) {
                        Py_XDECREF(item);
                        return -1;
                    }
                    Py_DECREF(item);
                    if (stop)
                        return 0;
                }
            }
        }
    }
    return 0;
}

/* index._single_hits over dict `table`'s entry for the last label (key), appended to *out */
static int single_hits(PyObject *table, PyObject *key, int nlabels, uint32_t cat, PyObject **out) {
    PyObject *entries = PyDict_GetItemWithError(table, key); /* borrowed */
    if (entries == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(entries)) {
        PyErr_SetString(PyExc_TypeError, "single-label entries must be a tuple");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {
        PyObject *e = PyTuple_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 2) {
            PyErr_SetString(PyExc_TypeError, "single-label entry must be (tag, mask)");
            return -1;
        }
        long tag = PyLong_AsLong(PyTuple_GET_ITEM(e, 0));
        long mask = PyLong_AsLong(PyTuple_GET_ITEM(e, 1));
        if ((tag == -1 || mask == -1) && PyErr_Occurred())
            return -1;
        if ((tag & TAG_SUB) || nlabels == 1) {
            uint32_t bits = (uint32_t)mask & cat;
            if (bits) {
                if (*out == NULL && (*out = PyList_New(0)) == NULL)
                    return -1;
                PyObject *item = Py_BuildValue("(iIl)", nlabels - 1, bits, tag);
                if (item == NULL || PyList_Append(*out, item) < 0) {
                    Py_XDECREF(item);
                    return -1;
                }
                Py_DECREF(item);
            }
        }
    }
    return 0;
}

static PyObject *Tables_lookup(Tables *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lookup(name_wire, cat, amask)");
        return NULL;
    }
    if (!self->held) {
        PyErr_SetString(PyExc_ValueError, "lookup on a closed BlockIndex");
        return NULL;
    }
    unsigned long cat_l = PyLong_AsUnsignedLongMask(args[1]);
    unsigned long amask_l = PyLong_AsUnsignedLongMask(args[2]);
    if (PyErr_Occurred())
        return NULL;
    uint32_t cat = (uint32_t)cat_l & CATEGORY_BITS, amask = (uint32_t)amask_l & CATEGORY_BITS;
    if (!PyBytes_Check(args[0]))
        Py_RETURN_NOTIMPLEMENTED;
    const unsigned char *src = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);

    /* the labels, as index.lookup_wire walks them (lower-casing never changes a length byte or the zero) */
    int offs[MAX_LABELS];
    int n = 0;
    Py_ssize_t i = 0;
    if (len < 1)
        Py_RETURN_NONE;
    unsigned int ln = src[0];
    while (ln) {
        if (ln > 63)
            Py_RETURN_NONE;
        if (n == MAX_LABELS || i > MAX_WIRE)
            Py_RETURN_NOTIMPLEMENTED;
        offs[n++] = (int)i;
        i += ln + 1;
        if (i >= len)
            Py_RETURN_NONE;
        ln = src[i];
    }
    if (n == 0)
        Py_RETURN_NONE;
    Py_ssize_t total = i + 1;
    if (total > MAX_WIRE)
        Py_RETURN_NOTIMPLEMENTED;
    unsigned char w[MAX_WIRE];
    for (Py_ssize_t k = 0; k < total; k++) {
        unsigned char c = src[k];
        w[k] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }

    int js[MAX_LABELS];
    uint64_t hs[MAX_LABELS];
    int count = 0;
    for (int j = 0; j < n; j++) {
        if (self->plan[n - j]) {
            js[count] = j;
            hs[count] = name_hash64(w + offs[j], (size_t)(total - offs[j])) & ~(uint64_t)3;
            count++;
        }
    }

    PyObject *found = NULL, *allows = NULL, *last = NULL;
    if (self->block.n && count && scan(self, &self->block, js, hs, count, cat, !self->has_allow, &found) < 0)
        goto error;
    if (PyDict_GET_SIZE(self->sblock) && (self->has_allow || found == NULL)) {
        Py_ssize_t lo = offs[n - 1] + 1;
        last = PyBytes_FromStringAndSize((const char *)w + lo, total - 1 - lo);
        if (last == NULL || single_hits(self->sblock, last, n, cat, &found) < 0)
            goto error;
    }
    if (found == NULL) {
        Py_XDECREF(last);
        return PyLong_FromLong(0);
    }
    if (self->has_allow) {
        if (self->allow.n && count && amask && scan(self, &self->allow, js, hs, count, amask, 0, &allows) < 0)
            goto error;
        if (PyDict_GET_SIZE(self->sallow) && amask) {
            if (last == NULL) {
                Py_ssize_t lo = offs[n - 1] + 1;
                if ((last = PyBytes_FromStringAndSize((const char *)w + lo, total - 1 - lo)) == NULL)
                    goto error;
            }
            if (single_hits(self->sallow, last, n, amask, &allows) < 0)
                goto error;
        }
    }
    if (allows == NULL && (allows = PyList_New(0)) == NULL)
        goto error;
    PyObject *offl = PyList_New(n);
    if (offl == NULL)
        goto error;
    for (int k = 0; k < n; k++) {
        PyObject *o = PyLong_FromLong(offs[k]);
        if (o == NULL) {
            Py_DECREF(offl);
            goto error;
        }
        PyList_SET_ITEM(offl, k, o);
    }
    Py_XDECREF(last);
    return Py_BuildValue("(y#NNN)", (const char *)w, total, offl, found, allows);
error:
    Py_XDECREF(found);
    Py_XDECREF(allows);
    Py_XDECREF(last);
    return NULL;
}

static PyObject *fi_name_hash(PyObject *mod, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
        return NULL;
    uint64_t h = name_hash64((const unsigned char *)b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLongLong(h);
}

static PyMethodDef Tables_methods[] = {
    {"lookup", (PyCFunction)(void (*)(void))Tables_lookup, METH_FASTCALL,
     "lookup(name_wire, cat, amask) -> None | 0 | (w, offs, found, allows) | NotImplemented (see the module)"},
    {"release", (PyCFunction)Tables_release, METH_NOARGS, "give the buffer back (BlockIndex.close)"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject TablesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "blocklists._indexscan.Tables",
    .tp_basicsize = sizeof(Tables),
    .tp_dealloc = (destructor)Tables_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled index's sections, searched in C.",
    .tp_methods = Tables_methods,
    .tp_new = Tables_new,
};

/* encrypted_dns.encrypted_dns_match's walk in C: the value of the first suffix of wire name ``w`` (the whole name,
 * then each parent, not the root) that ``table`` holds, or None; a name cut short ends the walk, as an IndexError
 * does in Python. */
static PyObject *fi_suffix_get(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "suffix_get(table: dict, name_wire: bytes)");
        return NULL;
    }
    const unsigned char *w = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]), off = 0;
    while (off < n && w[off]) {
        PyObject *suffix = off ? PyBytes_FromStringAndSize((const char *)w + off, n - off) : args[1];
        if (suffix == NULL)
            return NULL;
        PyObject *found = PyDict_GetItemWithError(args[0], suffix);
        if (off)
            Py_DECREF(suffix);
        if (found != NULL) {
            Py_INCREF(found);
            return found;
        }
        if (PyErr_Occurred())
            return NULL;
        off += w[off] + 1;
    }
    Py_RETURN_NONE;
}

/* ProfilePolicy.decide in C for the usual name: no pause, no temporary allow, the schedules' state of this second
 * already memoised, no bypass signal, a profile without allow, block or service entries, no block_all window,
 * no time budgets; then the category lookup (the index's lookup_wire), the encrypted-DNS table and the safe-search
 * table, each of which, when it matches, hands the name to the method. The verdict is the method's own object
 * (the shared plain allow, or the policy's last capped allow). Anything else calls the method, which is the
 * reference (tests/policy/test_profile_policy.py, the twin test). */
static PyObject *s_weekly, *s_base, *s_memo, *s_bypass, *s_bypass_wire, *s_domains, *s_index, *s_lookup_wire,
    *s_doh_match, *s_spent, *s_rewrites, *s_safe_host_wires, *s_safe_targets, *s_plain_allow, *s_capped_allow,
    *s_decide;

static int policy_flag(PyObject *policy, PyObject *name) {
    PyObject *v = PyObject_GetAttr(policy, name);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

static PyObject *fi_policy_decide(PyObject *Py_UNUSED(mod), PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 3 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "policy_decide(policy, name_wire, now, paused_until=None, temp_allows=())");
        return NULL;
    }
    PyObject *policy = args[0], *w = args[1], *now = args[2], *state = NULL, *tmp = NULL, *verdict = NULL;
    long long cap = 0; /* 0: none */
    int t;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames))
        goto by_method;
    if ((nargs > 3 && args[3] != Py_None) || !PyBytes_CheckExact(w) || !PyFloat_CheckExact(now))
        goto by_method;
    if (nargs > 4 && (t = PyObject_IsTrue(args[4])) != 0)
        goto checked;
    double when = PyFloat_AS_DOUBLE(now);
    if ((tmp = PyObject_GetAttr(policy, s_weekly)) == NULL)
        return NULL;
    if (tmp == Py_None) {
        Py_CLEAR(tmp);
        if ((state = PyObject_GetAttr(policy, s_base)) == NULL)
            return NULL;
    } else { /* the memo of this second: (second, state, next change) */
        Py_CLEAR(tmp);
        if ((tmp = PyObject_GetAttr(policy, s_memo)) == NULL)
            return NULL;
        if (!PyTuple_CheckExact(tmp) || PyTuple_GET_SIZE(tmp) != 3 || !PyLong_CheckExact(PyTuple_GET_ITEM(tmp, 0)))
            goto by_method_clean;
        long long sec = PyLong_AsLongLong(PyTuple_GET_ITEM(tmp, 0));
        if (sec == -1 && PyErr_Occurred())
            goto fail;
        if (!(when > -9e15 && when < 9e15) || (long long)floor(when) != sec)
            goto by_method_clean;
        PyObject *change = PyTuple_GET_ITEM(tmp, 2);
        if (change != Py_None) {
            if (!PyFloat_CheckExact(change))
                goto by_method_clean;
            double left = ceil(PyFloat_AS_DOUBLE(change) - when);
            if (!(left < 9e15))
                goto by_method_clean;
            cap = left < 1 ? 1 : (long long)left;
        }
        state = PyTuple_GET_ITEM(tmp, 1);
        Py_INCREF(state);
        Py_CLEAR(tmp);
    }
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 4 || PyTuple_GET_ITEM(state, 0) != Py_None)
        goto by_method_clean; /* a block_all window */
    /* 1. a bypass signal */
    if ((t = policy_flag(policy, s_bypass)) < 0)
        goto fail;
    if (t) {
        if ((tmp = PyObject_GetAttr(policy, s_bypass_wire)) == NULL)
            goto fail;
        t = PySequence_Contains(tmp, w);
        Py_CLEAR(tmp);
        if (t != 0)
            goto checked_clean;
    }
    /* 4-7. the profile's own allow, block and service entries; 9. time budgets */
    if ((t = policy_flag(policy, s_domains)) != 0)
        goto checked_clean;
    if ((tmp = PyObject_GetAttr(policy, s_spent)) == NULL)
        goto fail;
    t = tmp != Py_None;
    Py_CLEAR(tmp);
    if (t)
        goto by_method_clean;
    /* 8. categories: the index (a match goes to the method, which words the decision) */
    PyObject *mask = PyTuple_GET_ITEM(state, 2);
    if ((t = PyObject_IsTrue(mask)) < 0)
        goto fail;
    if (t) {
        if ((tmp = PyObject_GetAttr(policy, s_index)) == NULL)
            goto fail;
        if (tmp != Py_None) {
            PyObject *largs[3] = {tmp, w, mask};
            PyObject *match = PyObject_VectorcallMethod(s_lookup_wire, largs, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                                        NULL);
            if (match == NULL)
                goto fail;
            t = match != Py_None;
            Py_DECREF(match);
            if (t)
                goto by_method_clean;
        }
        Py_CLEAR(tmp);
    }
    if ((t = PyObject_IsTrue(PyTuple_GET_ITEM(state, 3))) < 0)
        goto fail;
    if (t) { /* the built-in DoH/DoT table */
        if ((tmp = PyObject_GetAttr(policy, s_doh_match)) == NULL)
            goto fail;
        PyObject *entry = PyObject_CallOneArg(tmp, w);
        Py_CLEAR(tmp);
        if (entry == NULL)
            goto fail;
        t = entry != Py_None;
        Py_DECREF(entry);
        if (t)
            goto by_method_clean;
    }
    /* 10. safe search */
    if ((t = policy_flag(policy, s_rewrites)) < 0)
        goto fail;
    if (t) {
        if ((tmp = PyObject_GetAttr(policy, s_safe_host_wires)) == NULL)
            goto fail;
        t = PySequence_Contains(tmp, w);
        Py_CLEAR(tmp);
        if (t < 0)
            goto fail;
        if (!t) {
            if ((tmp = PyObject_GetAttr(policy, s_safe_targets)) == NULL)
                goto fail;
            if (!PyDict_Check(tmp))
                goto by_method_clean;
            PyObject *target = PyDict_GetItemWithError(tmp, w);
            Py_CLEAR(tmp);
            if (target != NULL)
                goto by_method_clean;
            if (PyErr_Occurred())
                goto fail;
        }
    }
    /* 11. allowed: the shared plain allow, or the last capped allow while its cap is the same */
    Py_DECREF(state);
    state = NULL;
    if (cap == 0)
        return PyObject_GetAttr(policy, s_plain_allow);
    if ((verdict = PyObject_GetAttr(policy, s_capped_allow)) == NULL)
        return NULL;
    if (PyTuple_Check(verdict) && PyTuple_GET_SIZE(verdict) == 4 && PyLong_CheckExact(PyTuple_GET_ITEM(verdict, 3))) {
        long long had = PyLong_AsLongLong(PyTuple_GET_ITEM(verdict, 3));
        if (had == cap)
            return verdict;
        PyErr_Clear();
    }
    Py_DECREF(verdict);
    goto by_method;
checked_clean:
    if (t < 0)
        goto fail;
by_method_clean:
    Py_XDECREF(state);
    Py_XDECREF(tmp);
    goto by_method;
checked:
    if (t < 0)
        return NULL;
by_method: {
    PyObject *method = PyObject_GetAttr((PyObject *)Py_TYPE(policy), s_decide);
    if (method == NULL)
        return NULL;
    PyObject *r = PyObject_Vectorcall(method, args, nargs, kwnames);
    Py_DECREF(method);
    return r;
}
fail:
    Py_XDECREF(state);
    Py_XDECREF(tmp);
    return NULL;
}

static PyMethodDef module_functions[] = {
    {"suffix_get", (PyCFunction)(void (*)(void))fi_suffix_get, METH_FASTCALL,
     "suffix_get(table, name_wire) -> value or None: the first suffix of the name the table holds"},
    {"name_hash", fi_name_hash, METH_O, "name_hash(wire bytes) -> int: blake2s(digest_size=8), little-endian"},
    {"policy_decide", (PyCFunction)(void (*)(void))fi_policy_decide, METH_FASTCALL | METH_KEYWORDS,
     "policy_decide(policy, name_wire, now, paused_until=None, temp_allows=()): ProfilePolicy.decide in C for the "
     "usual name"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef indexscan_module = {
    PyModuleDef_HEAD_INIT, "_indexscan", "Hearth's optional compiled blocklist lookup (see blocklists/index.py).",
    -1, module_functions, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__indexscan(void) {
    if ((s_weekly = PyUnicode_InternFromString("_weekly")) == NULL)
        return NULL;
    if ((s_base = PyUnicode_InternFromString("_base")) == NULL)
        return NULL;
    if ((s_memo = PyUnicode_InternFromString("_memo")) == NULL)
        return NULL;
    if ((s_bypass = PyUnicode_InternFromString("_bypass")) == NULL)
        return NULL;
    if ((s_bypass_wire = PyUnicode_InternFromString("_bypass_wire")) == NULL)
        return NULL;
    if ((s_domains = PyUnicode_InternFromString("_domains")) == NULL)
        return NULL;
    if ((s_index = PyUnicode_InternFromString("index")) == NULL)
        return NULL;
    if ((s_lookup_wire = PyUnicode_InternFromString("lookup_wire")) == NULL)
        return NULL;
    if ((s_doh_match = PyUnicode_InternFromString("_doh_match")) == NULL)
        return NULL;
    if ((s_spent = PyUnicode_InternFromString("_spent")) == NULL)
        return NULL;
    if ((s_rewrites = PyUnicode_InternFromString("_rewrites")) == NULL)
        return NULL;
    if ((s_safe_host_wires = PyUnicode_InternFromString("_safe_host_wires")) == NULL)
        return NULL;
    if ((s_safe_targets = PyUnicode_InternFromString("_safe_targets")) == NULL)
        return NULL;
    if ((s_plain_allow = PyUnicode_InternFromString("_plain_allow")) == NULL)
        return NULL;
    if ((s_capped_allow = PyUnicode_InternFromString("_capped_allow")) == NULL)
        return NULL;
    if ((s_decide = PyUnicode_InternFromString("decide")) == NULL)
        return NULL;
    if (PyType_Ready(&TablesType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&indexscan_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TablesType);
    if (PyModule_AddObject(m, "Tables", (PyObject *)&TablesType) < 0) {
        Py_DECREF(&TablesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

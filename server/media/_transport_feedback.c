/* transport-cc feedback in C: what server/media/transport_feedback.py describes (the rules
 * follow libwebrtc's receiver; that module's docstring is the specification), kept here
 * because the SFU runs it for every packet a publisher sends (`record`) and about ten
 * times a second per publisher (`feedbacks`). In Python `feedbacks` scanned the whole
 * 500 ms window of arrivals twice per call and added each packet's status through a
 * method call: 12 % of the SFU's samples receiving one 720p simulcast publisher
 * (py-spy, docs/benchmarks.md's receive section).
 *
 * The arrivals are one array sorted by unwrapped sequence number (a packet in order is
 * appended; a reordered one is inserted); a feedback reports the array's tail from the
 * first sequence number not yet reported.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BACK_WINDOW_US 500000LL /* arrivals kept behind the newest, for reordered packets */
#define MAX_BYTES 1200          /* one feedback packet, RTCP header included */
#define RTCP_RTPFB 205
#define FMT_TRANSPORT_CC 15
#define TICK_US 250LL
#define REFERENCE_US 64000LL
#define REFERENCE_WRAP (1LL << 24)
#define MAX_MISSING 0x7FFE /* libwebrtc's limit on missing packets before the first */
#define MAX_STATUSES 0xFFFF
#define HEADER_BYTES 20 /* RTCP header, both SSRCs, base, count, reference, packet count */
#define NOT_RECEIVED 0
#define SMALL_DELTA 1
#define LARGE_DELTA 2
#define MAX_RUN 0x1FFF

/* -- status chunks: symbols packed into 16-bit chunks as they are added ----------------- */

typedef struct {
    uint16_t *done; /* closed chunks */
    Py_ssize_t ndone, cap;
    int symbols[14]; /* the open chunk's first 14 symbols */
    int size;        /* symbols in the open chunk (a run may hold more than 14) */
    int same;        /* all the same so far */
    int large;       /* a LARGE_DELTA among them: only 2-bit vectors hold it */
} Chunks;

static int chunks_push(Chunks *c, uint16_t chunk) {
    if (c->ndone == c->cap) {
        Py_ssize_t cap = c->cap ? c->cap * 2 : 64;
        uint16_t *done = PyMem_Realloc(c->done, cap * sizeof(uint16_t));
        if (done == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        c->done = done;
        c->cap = cap;
    }
    c->done[c->ndone++] = chunk;
    return 0;
}

static uint16_t run_chunk(int symbol, int length) { return (uint16_t)(symbol << 13 | length); }

static uint16_t one_bit(const int *symbols, int n) {
    uint16_t chunk = 0x8000;
    for (int i = 0; i < n; i++) chunk |= (uint16_t)(symbols[i] << (13 - i));
    return chunk;
}

static uint16_t two_bit(const int *symbols, int n) {
    uint16_t chunk = 0xC000;
    for (int i = 0; i < n; i++) chunk |= (uint16_t)(symbols[i] << (12 - 2 * i));
    return chunk;
}

static Py_ssize_t chunks_bytes(const Chunks *c) { return 2 * (c->ndone + (c->size ? 1 : 0)); }

static int chunks_add(Chunks *c, int symbol, long long count);

/* Close the open chunk because the next symbol does not fit it. */
static int chunks_close(Chunks *c) {
    int rest[14], nrest = 0;
    if (c->same) {
        if (chunks_push(c, run_chunk(c->symbols[0], c->size)) < 0) return -1;
    } else if (c->size == 14) { /* fourteen without a large delta */
        if (chunks_push(c, one_bit(c->symbols, 14)) < 0) return -1;
    } else { /* 7 to 13, with a large delta among them: the first seven as 2-bit */
        if (chunks_push(c, two_bit(c->symbols, 7)) < 0) return -1;
        nrest = c->size - 7;
        memcpy(rest, c->symbols + 7, nrest * sizeof(int));
    }
    c->size = 0;
    c->same = 1;
    c->large = 0;
    for (int i = 0; i < nrest; i++)
        if (chunks_add(c, rest[i], 1) < 0) return -1;
    return 0;
}

static int chunks_add(Chunks *c, int symbol, long long count) {
    while (count > 0) {
        int size = c->size;
        if (c->same && size >= 14 && symbol == c->symbols[0] && size < MAX_RUN) {
            long long taken = count < MAX_RUN - size ? count : MAX_RUN - size;
            c->size += (int)taken;
            count -= taken;
        } else if (size < 7 || (size < 14 && !c->large && symbol != LARGE_DELTA) ||
                   (c->same && size > 0 && symbol == c->symbols[0] && size < MAX_RUN)) {
            c->symbols[size] = symbol; /* size < 14 here: a longer run takes the first branch */
            c->same = c->same && symbol == c->symbols[0];
            c->large = c->large || symbol == LARGE_DELTA;
            c->size += 1;
            count -= 1;
        } else if (chunks_close(c) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Every chunk, the open one closed (padded with not-received symbols, which the status
 * count leaves unread), appended to `c->done`. */
static int chunks_finish(Chunks *c) {
    if (!c->size) return 0;
    uint16_t chunk = c->same        ? run_chunk(c->symbols[0], c->size)
                     : c->size <= 7 ? two_bit(c->symbols, c->size)
                                    : one_bit(c->symbols, c->size);
    c->size = 0;
    return chunks_push(c, chunk);
}

/* -- the arrivals of one transport, and its feedback ---------------------------------- */

typedef struct {
    PyObject_HEAD
    int64_t *seqs; /* unwrapped sequence numbers, ascending */
    int64_t *at;   /* their arrival times (us) */
    Py_ssize_t n, cap;
    uint32_t media_ssrc; /* the SSRC of the latest packet: the feedback names it */
    int have_last, have_start, have_floor;
    int64_t last_seq; /* the latest unwrapped seq */
    int64_t start;    /* the first seq the next feedback reports */
    int64_t end;      /* one past the highest seq received */
    int64_t floor;    /* seqs below are forgotten: too late to report */
    int64_t newest;   /* the latest arrival (us) */
    unsigned long long count; /* feedback packets made (their 8-bit count wraps) */
} Feedback;

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* the first index whose seq is >= seq */
static Py_ssize_t lower_bound(const Feedback *f, int64_t seq) {
    Py_ssize_t lo = 0, hi = f->n;
    if (hi && f->seqs[hi - 1] < seq) return hi; /* in order: past the end */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (f->seqs[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static PyObject *record(Feedback *f, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "record takes seq, arrival_us and ssrc");
        return NULL;
    }
    long seq16 = PyLong_AsLong(args[0]);
    long long arrival = PyLong_AsLongLong(args[1]);
    unsigned long ssrc = PyLong_AsUnsignedLongMask(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (seq16 < 0 || seq16 > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "a transport-wide sequence number is 16 bits");
        return NULL;
    }
    f->media_ssrc = (uint32_t)ssrc;
    int64_t seq = f->have_last ? f->last_seq + ((seq16 - f->last_seq + 0x8000) & 0xFFFF) - 0x8000
                               : seq16;
    f->last_seq = seq;
    f->have_last = 1;
    if (f->have_floor && seq < f->floor) Py_RETURN_NONE; /* too late to report */
    Py_ssize_t pos = lower_bound(f, seq);
    if (pos < f->n && f->seqs[pos] == seq) Py_RETURN_NONE; /* a duplicate: the first counts */
    if (f->n == f->cap) {
        Py_ssize_t cap = f->cap ? f->cap * 2 : 256;
        int64_t *seqs = PyMem_Realloc(f->seqs, cap * sizeof(int64_t));
        if (seqs == NULL) return PyErr_NoMemory();
        f->seqs = seqs;
        int64_t *at = PyMem_Realloc(f->at, cap * sizeof(int64_t));
        if (at == NULL) return PyErr_NoMemory();
        f->at = at;
        f->cap = cap;
    }
    memmove(f->seqs + pos + 1, f->seqs + pos, (f->n - pos) * sizeof(int64_t));
    memmove(f->at + pos + 1, f->at + pos, (f->n - pos) * sizeof(int64_t));
    f->seqs[pos] = seq;
    f->at[pos] = arrival;
    f->n++;
    if (!f->have_start || seq < f->start) {
        f->start = seq;
        f->have_start = 1;
    }
    if (seq + 1 > f->end) f->end = seq + 1;
    if (arrival > f->newest) f->newest = arrival;
    Py_RETURN_NONE;
}

/* A delta in 250 us ticks, rounded half away from zero (as libwebrtc rounds). */
static int64_t ticks_of(int64_t delta) {
    int64_t half = TICK_US / 2;
    return delta >= 0 ? (delta + half) / TICK_US : -((-delta + half) / TICK_US);
}

/* At most how many chunk bytes `missing` lost statuses and one received add. */
static int64_t worst_chunk_bytes(int64_t missing) {
    return 2 * (4 + (missing < 14 ? missing / 7 : missing / MAX_RUN));
}

static void put16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v) {
    put16(p, v >> 16);
    put16(p + 2, v & 0xFFFF);
}

/* One feedback packet from `start`, with as many arrivals from index `first` as fit;
 * sets *used to how many it reports. */
static PyObject *one_packet(Feedback *f, uint32_t sender, int64_t start, Py_ssize_t first,
                            Py_ssize_t *used_out) {
    int64_t base = f->seqs[first] - MAX_MISSING;
    if (start > base) base = start;
    int64_t reference = floor_div(f->at[first], REFERENCE_US);
    int64_t reached = reference * REFERENCE_US; /* the time the deltas so far add up to */
    unsigned char deltas[MAX_BYTES];
    Py_ssize_t ndeltas = 0, used = 0;
    int64_t expected = base;
    Chunks chunks = {.same = 1};
    PyObject *out = NULL;
    for (Py_ssize_t i = first; i < f->n; i++) {
        int64_t seq = f->seqs[i];
        int64_t ticks = ticks_of(f->at[i] - reached);
        int symbol, length;
        if (0 <= ticks && ticks <= 0xFF) {
            symbol = SMALL_DELTA;
            length = 1;
        } else if (-0x8000 <= ticks && ticks <= 0x7FFF) {
            symbol = LARGE_DELTA;
            length = 2;
        } else {
            break; /* over +-8.19 s from the previous: the next packet starts there */
        }
        int64_t missing = seq - expected;
        int64_t size = HEADER_BYTES + chunks_bytes(&chunks) + worst_chunk_bytes(missing) + ndeltas;
        if (used && (size + length > MAX_BYTES || seq - base >= MAX_STATUSES)) break;
        if (chunks_add(&chunks, NOT_RECEIVED, missing) < 0 || chunks_add(&chunks, symbol, 1) < 0)
            goto done;
        if (length == 1) {
            deltas[ndeltas++] = (unsigned char)ticks;
        } else {
            put16(deltas + ndeltas, (unsigned)(ticks & 0xFFFF));
            ndeltas += 2;
        }
        reached += ticks * TICK_US;
        expected = seq + 1;
        used++;
    }
    if (chunks_finish(&chunks) < 0) goto done;
    Py_ssize_t body = 16 + 2 * chunks.ndone + ndeltas;
    Py_ssize_t padded = body + (-body & 3); /* zero padding to a 32-bit boundary */
    out = PyBytes_FromStringAndSize(NULL, 4 + padded);
    if (out == NULL) goto done;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    memset(p, 0, 4 + padded);
    p[0] = 0x80 | FMT_TRANSPORT_CC;
    p[1] = RTCP_RTPFB;
    put16(p + 2, (unsigned)(padded / 4));
    put32(p + 4, sender);
    put32(p + 8, f->media_ssrc);
    put16(p + 12, (unsigned)(base & 0xFFFF));
    put16(p + 14, (unsigned)(expected - base));
    int64_t wrapped = reference % REFERENCE_WRAP;
    if (wrapped < 0) wrapped += REFERENCE_WRAP;
    put32(p + 16, (uint32_t)(wrapped << 8 | (f->count & 0xFF)));
    f->count++;
    for (Py_ssize_t i = 0; i < chunks.ndone; i++) put16(p + 20 + 2 * i, chunks.done[i]);
    memcpy(p + 20 + 2 * chunks.ndone, deltas, ndeltas);
    *used_out = used;
done:
    PyMem_Free(chunks.done);
    return out;
}

/* Forget the arrivals older than BACK_WINDOW_US behind the newest (once reported). */
static void forget_old(Feedback *f) {
    int64_t limit = f->newest - BACK_WINDOW_US;
    Py_ssize_t kept = 0;
    int any = 0;
    int64_t newest_forgotten = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        if (f->at[i] < limit) {
            if (!any || f->seqs[i] > newest_forgotten) newest_forgotten = f->seqs[i];
            any = 1;
            continue;
        }
        f->seqs[kept] = f->seqs[i];
        f->at[kept] = f->at[i];
        kept++;
    }
    f->n = kept;
    if (any) {
        int64_t floor = newest_forgotten + 1;
        if (!f->have_floor || floor > f->floor) f->floor = floor;
        f->have_floor = 1;
    }
}

static PyObject *feedbacks(Feedback *f, PyObject *arg) {
    uint32_t sender = (uint32_t)PyLong_AsUnsignedLongMask(arg);
    if (PyErr_Occurred()) return NULL;
    PyObject *packets = PyList_New(0);
    if (packets == NULL || !f->have_start) return packets;
    int64_t start = f->start;
    Py_ssize_t first = lower_bound(f, start);
    while (first < f->n) {
        Py_ssize_t used = 0;
        PyObject *packet = one_packet(f, sender, start, first, &used);
        if (packet == NULL || PyList_Append(packets, packet) < 0) {
            Py_XDECREF(packet);
            Py_DECREF(packets);
            return NULL;
        }
        Py_DECREF(packet);
        start = f->seqs[first + used - 1] + 1;
        first += used;
    }
    f->start = start > f->end ? start : f->end;
    forget_old(f);
    return packets;
}

static PyObject *feedback_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "TransportFeedback() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0); /* zeroed: nothing recorded */
}

static void feedback_dealloc(Feedback *f) {
    PyMem_Free(f->seqs);
    PyMem_Free(f->at);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyObject *get_media_ssrc(Feedback *f, void *closure) {
    return PyLong_FromUnsignedLong(f->media_ssrc);
}

static PyObject *get_count(Feedback *f, void *closure) {
    return PyLong_FromUnsignedLongLong(f->count);
}

static PyObject *get_kept(Feedback *f, void *closure) { return PyLong_FromSsize_t(f->n); }

static PyMethodDef feedback_methods[] = {
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(seq, arrival_us, ssrc): a packet with transport-wide sequence number `seq` "
     "arrived (per packet)"},
    {"feedbacks", (PyCFunction)feedbacks, METH_O,
     "feedbacks(sender_ssrc) -> the RTCP feedback packets for what arrived since the last "
     "call (none when nothing did)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef feedback_getset[] = {
    {"media_ssrc", (getter)get_media_ssrc, NULL, "the SSRC of the latest packet", NULL},
    {"count", (getter)get_count, NULL, "feedback packets made", NULL},
    {"kept", (getter)get_kept, NULL, "arrivals kept (the back window's)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FeedbackType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._transport_feedback.TransportFeedback",
    .tp_basicsize = sizeof(Feedback),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The transport-wide sequence numbers one transport received, and the feedback "
              "packets that report them.",
    .tp_new = feedback_new,
    .tp_dealloc = (destructor)feedback_dealloc,
    .tp_methods = feedback_methods,
    .tp_getset = feedback_getset,
};

/* status_chunks(symbols): the chunks `symbols` (0..2 each) pack into, added one by one */
static PyObject *status_chunks(PyObject *module, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "status_chunks takes a sequence of symbols");
    if (seq == NULL) return NULL;
    Chunks chunks = {.same = 1};
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        long symbol = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (symbol == -1 && PyErr_Occurred()) goto done;
        if (symbol < NOT_RECEIVED || symbol > LARGE_DELTA) {
            PyErr_SetString(PyExc_ValueError, "a packet status symbol is 0, 1 or 2");
            goto done;
        }
        if (chunks_add(&chunks, (int)symbol, 1) < 0) goto done;
    }
    if (chunks_finish(&chunks) < 0) goto done;
    out = PyList_New(chunks.ndone);
    if (out == NULL) goto done;
    for (Py_ssize_t i = 0; i < chunks.ndone; i++) {
        PyObject *chunk = PyLong_FromLong(chunks.done[i]);
        if (chunk == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, chunk);
    }
done:
    PyMem_Free(chunks.done);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef module_methods[] = {
    {"status_chunks", status_chunks, METH_O,
     "status_chunks(symbols) -> the 16-bit status chunks they pack into"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_transport_feedback",
                                    "transport-cc feedback (see _transport_feedback.c).", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__transport_feedback(void) {
    if (PyType_Ready(&FeedbackType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&FeedbackType);
    if (PyModule_AddObject(m, "TransportFeedback", (PyObject *)&FeedbackType) < 0 ||
        PyModule_AddIntConstant(m, "BACK_WINDOW_US", BACK_WINDOW_US) < 0 ||
        PyModule_AddIntConstant(m, "MAX_BYTES", MAX_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "REFERENCE_US", REFERENCE_US) < 0 ||
        PyModule_AddIntConstant(m, "REFERENCE_WRAP", REFERENCE_WRAP) < 0 ||
        PyModule_AddIntConstant(m, "TICK_US", TICK_US) < 0 ||
        PyModule_AddIntConstant(m, "MAX_MISSING", MAX_MISSING) < 0 ||
        PyModule_AddIntConstant(m, "MAX_RUN", MAX_RUN) < 0) {
        Py_DECREF(&FeedbackType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

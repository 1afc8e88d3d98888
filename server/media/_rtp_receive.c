/* The SFU's per-packet receive work in C: one SRTP packet unprotected and parsed into
 * aiortc's `RtpPacket` in one call (aiortc_internals/direct_receive.py calls it for each
 * SRTP datagram of a tapped connection).
 *
 * Before it, Python did per packet what aiortc does: pylibsrtp's `Session.unprotect`
 * (type and length checks, an `int *` from cffi, a copy into its buffer, the call, a copy
 * out) and `RtpPacket.parse` (a struct unpack, `RtpPacket.__init__`, the header extension
 * list, `HeaderExtensionsMap.get` with a `HeaderExtensions.__init__` and a struct unpack
 * per extension): about half of the direct receive path's Python time (docs/benchmarks.md,
 * receive path). Here the packet is copied once into a buffer, unprotected in place by
 * libsrtp 2's `srtp_unprotect` (pylibsrtp's own build, reached through its address, as the
 * send path reaches `srtp_protect`), and parsed with aiortc's rules; the result is the same
 * `RtpPacket` (the same attributes, the same `HeaderExtensions`), made without running
 * either class's `__init__` (which only set the attributes set here: direct_receive.py's
 * `problems()` checks that).
 *
 * `vp8_payload` strips a VP8 packet's payload descriptor as aiortc's `vp8_depayload` does
 * (which builds a `VpxPayloadDescriptor` to return only the bytes after it): ~1.2 us of
 * Python per video packet.
 *
 * `ArrivalClock` reads the kernel's receive timestamp of a socket's last datagram
 * (aiortc_internals/arrival.py: SIOCGSTAMPNS), with its checks, in one call instead of
 * Python's `fcntl.ioctl`, a bytes buffer and a struct unpack per packet.
 *
 * `RtpDemux` stands in for an aioice `StunProtocol.datagram_received` (direct_receive.py's
 * `_demux` puts one in each): what DirectReceive does before the unprotect (its checks,
 * the transport's counters, the arrival stamp) and the `FastLayers` receive, so a routed
 * layer's packet runs no Python at all between uvloop's read and its frame.
 *
 * `LayerBuffer` is one video layer's per-packet bookkeeping (a simulcast layer's or a
 * single stream's): aiortc's `NackGenerator`
 * (the packets missing, kept while at most `HISTORY` behind the newest, reported in
 * ascending order when a packet opens a gap), aiortc's `JitterBuffer.add` rules
 * (`MAX_MISORDER`, `remove`, `smart_remove`, a PLI wanted when it restarts or overflows)
 * with the prompt release of receive.py's `PromptVideoBuffer` (the first frame goes once
 * its packets are all in up to the marker bit, or the next frame has begun), the gap skip
 * (`skip_gap_in`, tests/media/test_layer_buffer.py) for a layer with packets but no frame
 * for `STALL_S` (after a skip, a restart or an overflow the next frame is `after_gap`:
 * the publication asks for the keyframe, at most once a second a layer), and aiortc's
 * `StreamStatistics` of the layer's packets. The missing set is a bit per sequence number
 * (8 KiB): by the rule above it only holds numbers in [newest - HISTORY, newest), so a
 * newer packet clears what fell out of that window instead of scanning the set.
 * tests/media/test_layer_buffer.py runs it beside aiortc's classes on random arrivals.
 *
 * `FastLayers` takes a routed layer's packet (simulcast_receive.py routes a VP8 layer of
 * a tapped receiver once its first packet came through Python: direct_receive.py's
 * `route_fast`) from the datagram to its frame in this one call: unprotect, the header
 * read, the transport-cc record (and the
 * feedback's send when due), the checks that the packet is still routed to a receiver
 * that receives, the statistics, the VP8 descriptor stripped, the layer's buffer. Python
 * runs only when there is something to do (a frame, a NACK, a PLI: ~30 times a second a
 * layer, not ~100-250). An audio stream is routed the same way (receive.py routes each
 * SSRC of a tapped audio receiver once its first packet came through Python): each
 * packet is a frame, so Python runs for each to deliver it, but the unprotect, the
 * record, the statistics, `AudioPassThrough`'s rule (only a packet newer than the
 * stream's newest goes on, the newest kept in the stream's `LayerBuffer` for both paths)
 * and the audio level are done here, with no `RtpPacket`. Anything it is not sure of
 * (another SSRC or payload type, an odd header extension, a RID or a MID not ASCII, padding, a
 * receiver not receiving) goes to the Python path as the `RtpPacket` `unprotect_parse`
 * would have made. tests/media/test_fast_receive.py feeds
 * the same datagrams to both paths and compares what comes out.
 *
 * A buffer is `quiet` while nobody takes its frames (the publication says so: no
 * subscriber on that layer or moving to it, no subscriber at all for audio or a single
 * stream; forwarding.py's `Publication._taken`). It then hands on only what must be seen
 * at once (a keyframe: a subscriber moving to the layer waits for one, and it carries
 * the layer's size; a frame after a gap; a NACK or a PLI) and one frame each QUIET_S,
 * which carries the count and bytes of the frames kept back before it, so that the
 * publication's counts, bit rates and last-frame times stay whole (a quarter second
 * late at most). Python then runs ~4 times a second for such a layer or audio stream,
 * not 30-50: a publisher nobody watches, or the layers of a simulcast publisher that
 * nobody is on (two of three in a 1:1 room), cost the loop little beyond the packets.
 *
 * Differences from aiortc, on purpose: a header extension whose length does not fit its
 * kind (abs-send-time and transmission offset 3 bytes, audio level 1, transport-wide
 * sequence number 2) drops the packet, where aiortc's `struct.unpack` raises a
 * `struct.error` that its own receive path does not catch. Every packet aiortc parses,
 * this parses the same (tests/media/test_receive_parse.py compares them).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

#include <linux/sockios.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define RTP_HEADER 12
#define BUFFER 2048 /* longer than any UDP payload on a 1,500-byte MTU */

typedef int (*srtp_unprotect_fn)(void *ctx, void *srtp_hdr, int *len_ptr);

static unsigned char buffer[BUFFER] __attribute__((aligned(16))); /* libsrtp reads words */

/* aiortc's classes, given once by `classes()` */
static PyTypeObject *packet_class = NULL;
static PyTypeObject *extensions_class = NULL;
static PyObject *empty_tuple = NULL;

/* attribute names */
static PyObject *S_version, *S_marker, *S_payload_type, *S_sequence_number, *S_timestamp,
    *S_ssrc, *S_csrc, *S_extensions, *S_payload, *S_padding_size, *S_mid,
    *S_repaired_rtp_stream_id, *S_rtp_stream_id, *S_abs_send_time, *S_transmission_offset,
    *S_audio_level, *S_transport_sequence_number;

#define KINDS 7
/* the extensions aiortc reads, in the order of `HeaderExtensionsMap.get`'s branches */
enum { MID, REPAIRED_RID, RID, ABS_SEND_TIME, TRANSMISSION_OFFSET, AUDIO_LEVEL, TRANSPORT_SEQ };
static PyObject **kind_names[KINDS] = {
    &S_mid,           &S_repaired_rtp_stream_id, &S_rtp_stream_id,
    &S_abs_send_time, &S_transmission_offset,    &S_audio_level,
    &S_transport_sequence_number};

/* The ids negotiated for each kind (aiortc's `HeaderExtensionsMap.__ids`: a
 * `HeaderExtensions` whose values are ids, None where not negotiated); -1 for none. */
static int read_ids(PyObject *ids, long out[KINDS]) {
    for (int k = 0; k < KINDS; k++) {
        PyObject *value = PyObject_GetAttr(ids, *kind_names[k]);
        if (value == NULL) return -1;
        out[k] = -1;
        if (PyLong_Check(value)) {
            out[k] = PyLong_AsLong(value);
            if (out[k] == -1 && PyErr_Occurred()) {
                Py_DECREF(value);
                return -1;
            }
        }
        Py_DECREF(value);
    }
    return 0;
}

static PyObject *new_instance(PyTypeObject *cls) {
    /* object.__new__(cls): the instance without its __init__ */
    return PyBaseObject_Type.tp_new(cls, empty_tuple, NULL);
}

static int set_long(PyObject *obj, PyObject *name, long value) {
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL) return -1;
    int r = PyObject_SetAttr(obj, name, v);
    Py_DECREF(v);
    return r;
}

/* One extension's value as aiortc's `HeaderExtensionsMap.get` makes it. Returns 0 and a
 * new reference in *out; 1 when the value is malformed (the packet is dropped); -1 on a
 * Python error. */
static int extension_value(int kind, const unsigned char *v, long len, PyObject **out) {
    switch (kind) {
    case MID:
        *out = PyUnicode_DecodeUTF8((const char *)v, len, NULL);
        break;
    case REPAIRED_RID:
    case RID:
        *out = PyUnicode_DecodeASCII((const char *)v, len, NULL);
        break;
    case ABS_SEND_TIME:
        if (len != 3) return 1;
        *out = PyLong_FromLong(((long)v[0] << 16) | ((long)v[1] << 8) | v[2]);
        break;
    case TRANSMISSION_OFFSET: {
        if (len != 3) return 1;
        int32_t x = (int32_t)(((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) |
                              ((uint32_t)v[2] << 8));
        *out = PyLong_FromLong((long)(x >> 8));
        break;
    }
    case AUDIO_LEVEL:
        if (len != 1) return 1;
        *out = Py_BuildValue("(Ni)", PyBool_FromLong(v[0] & 0x80), v[0] & 0x7F);
        break;
    case TRANSPORT_SEQ:
        if (len != 2) return 1;
        *out = PyLong_FromLong(((long)v[0] << 8) | v[1]);
        break;
    default:
        return 1;
    }
    if (*out == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) { /* a bad mid or rid: aiortc drops */
            PyErr_Clear();
            return 1;
        }
        return -1;
    }
    return 0;
}

/* The header extensions of `profile` in [v, v + len): a `HeaderExtensions`, or NULL with
 * *malformed set (drop the packet) or a Python error. */
static PyObject *parse_extensions(unsigned profile, const unsigned char *v, long len,
                                  const long ids[KINDS], int *malformed) {
    PyObject *extensions = new_instance(extensions_class);
    if (extensions == NULL) return NULL;
    if (profile != 0xBEDE && profile != 0x1000) return extensions; /* aiortc reads none */
    long pos = 0;
    while (pos < len) {
        if (v[pos] == 0) { /* padding */
            pos++;
            continue;
        }
        long id, length;
        if (profile == 0xBEDE) {
            id = (v[pos] & 0xF0) >> 4;
            length = (v[pos] & 0x0F) + 1;
            pos += 1;
        } else {
            if (len < pos + 2) goto malformed;
            id = v[pos];
            length = v[pos + 1];
            pos += 2;
        }
        if (len < pos + length) goto malformed;
        for (int k = 0; k < KINDS; k++) {
            if (ids[k] != id) continue;
            PyObject *value;
            int r = extension_value(k, v + pos, length, &value);
            if (r > 0) goto malformed;
            if (r < 0) goto error;
            r = PyObject_SetAttr(extensions, *kind_names[k], value);
            Py_DECREF(value);
            if (r < 0) goto error;
            break; /* aiortc's elif: the first kind with this id */
        }
        pos += length;
    }
    return extensions;
malformed:
    *malformed = 1;
error:
    Py_DECREF(extensions);
    return NULL;
}

/* The RTP packet in buffer[0, len) as an aiortc RtpPacket; NULL with *malformed set
 * where aiortc's parse raises ValueError, or a Python error. */
static PyObject *parse(long len, const long ids[KINDS], int *malformed) {
    const unsigned char *d = buffer;
    if (len < RTP_HEADER || (d[0] >> 6) != 2) goto malformed;
    int padding = (d[0] >> 5) & 1, extension = (d[0] >> 4) & 1, cc = d[0] & 0x0F;
    if (len < RTP_HEADER + 4 * cc) goto malformed;
    long pos = RTP_HEADER;
    PyObject *csrc = PyList_New(cc);
    if (csrc == NULL) return NULL;
    for (int i = 0; i < cc; i++, pos += 4) {
        PyObject *c = PyLong_FromUnsignedLong(((unsigned long)d[pos] << 24) |
                                              ((unsigned long)d[pos + 1] << 16) |
                                              ((unsigned long)d[pos + 2] << 8) | d[pos + 3]);
        if (c == NULL) {
            Py_DECREF(csrc);
            return NULL;
        }
        PyList_SET_ITEM(csrc, i, c);
    }
    PyObject *extensions;
    if (extension) {
        if (len < pos + 4) {
            Py_DECREF(csrc);
            goto malformed;
        }
        unsigned profile = ((unsigned)d[pos] << 8) | d[pos + 1];
        long ext_len = (((long)d[pos + 2] << 8) | d[pos + 3]) * 4;
        pos += 4;
        if (len < pos + ext_len) {
            Py_DECREF(csrc);
            goto malformed;
        }
        extensions = parse_extensions(profile, d + pos, ext_len, ids, malformed);
        pos += ext_len;
    } else {
        extensions = new_instance(extensions_class);
    }
    if (extensions == NULL) {
        Py_DECREF(csrc);
        return NULL;
    }
    long padding_size = 0;
    if (padding) {
        padding_size = d[len - 1];
        if (padding_size == 0 || padding_size > len - pos) {
            Py_DECREF(csrc);
            Py_DECREF(extensions);
            goto malformed;
        }
    }
    PyObject *payload = PyBytes_FromStringAndSize((const char *)d + pos, len - pos - padding_size);
    PyObject *packet = payload == NULL ? NULL : new_instance(packet_class);
    if (packet == NULL || set_long(packet, S_version, 2) < 0 ||
        set_long(packet, S_marker, d[1] >> 7) < 0 ||
        set_long(packet, S_payload_type, d[1] & 0x7F) < 0 ||
        set_long(packet, S_sequence_number, ((long)d[2] << 8) | d[3]) < 0 ||
        set_long(packet, S_timestamp,
                 (long)(((uint32_t)d[4] << 24) | ((uint32_t)d[5] << 16) |
                        ((uint32_t)d[6] << 8) | d[7])) < 0 ||
        set_long(packet, S_ssrc,
                 (long)(((uint32_t)d[8] << 24) | ((uint32_t)d[9] << 16) |
                        ((uint32_t)d[10] << 8) | d[11])) < 0 ||
        PyObject_SetAttr(packet, S_csrc, csrc) < 0 ||
        PyObject_SetAttr(packet, S_extensions, extensions) < 0 ||
        PyObject_SetAttr(packet, S_payload, payload) < 0 ||
        set_long(packet, S_padding_size, padding_size) < 0) {
        Py_XDECREF(packet);
        packet = NULL;
    }
    Py_DECREF(csrc);
    Py_DECREF(extensions);
    Py_XDECREF(payload);
    return packet;
malformed:
    *malformed = 1;
    return NULL;
}

static int address(PyObject *obj, void **out) {
    *out = PyLong_AsVoidPtr(obj);
    return *out == NULL && PyErr_Occurred() ? -1 : 0;
}

/* unprotect_parse(session, unprotect, data, ids): see _rtp_receive.pyi */
static PyObject *unprotect_parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "unprotect_parse takes 4 arguments");
        return NULL;
    }
    if (packet_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "classes() was not called");
        return NULL;
    }
    void *session, *fn;
    if (address(args[0], &session) < 0 || address(args[1], &fn) < 0) return NULL;
    if (session == NULL || fn == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session or function");
        return NULL;
    }
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(args[2], &data, &size) < 0) return NULL;
    long ids[KINDS];
    if (read_ids(args[3], ids) < 0) return NULL;
    if (size > BUFFER) Py_RETURN_NONE; /* pylibsrtp refuses these too ("too long") */
    memcpy(buffer, data, (size_t)size);
    int len = (int)size;
    if (((srtp_unprotect_fn)fn)(session, buffer, &len) != 0) Py_RETURN_NONE; /* not ours */
    int malformed = 0;
    PyObject *packet = parse(len, ids, &malformed);
    if (packet == NULL && malformed) Py_RETURN_NONE;
    return packet;
}

/* Where a VP8 payload's data begins after its descriptor (RFC 7741 4.2), as aiortc's
 * `vp8_depayload` reads it; -1 where its `VpxPayloadDescriptor.parse` raises ValueError
 * (a descriptor cut short). */
static Py_ssize_t vp8_offset(const unsigned char *d, Py_ssize_t len) {
    Py_ssize_t pos = 1;
    if (len < 1) return -1;
    if (d[0] & 0x80) { /* X: extended control bits */
        if (len < pos + 1) return -1;
        unsigned char x = d[pos++];
        if (x & 0x80) { /* I: picture id, 7 or 15 bits */
            if (len < pos + 1) return -1;
            if (d[pos] & 0x80) {
                if (len < pos + 2) return -1;
                pos += 2;
            } else {
                pos += 1;
            }
        }
        if (x & 0x40) { /* L: TL0PICIDX */
            if (len < pos + 1) return -1;
            pos += 1;
        }
        if (x & 0x30) { /* T or K: one octet */
            if (len < pos + 1) return -1;
            pos += 1;
        }
    }
    return pos;
}

/* vp8_payload(payload): the VP8 payload after its descriptor, as aiortc's `vp8_depayload`
 * returns it; ValueError where it raises one. */
static PyObject *vp8_payload(PyObject *module, PyObject *arg) {
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &data, &len) < 0) return NULL;
    Py_ssize_t pos = vp8_offset((const unsigned char *)data, len);
    if (pos < 0) {
        PyErr_SetString(PyExc_ValueError, "VP8 payload descriptor is truncated");
        return NULL;
    }
    return PyBytes_FromStringAndSize(data + pos, len - pos);
}

/* -- a simulcast layer's bookkeeping: NACK tracking, jitter buffer, frames, statistics -- */

#define CAPACITY 512     /* packets held: a power of two that divides 65536 */
#define MAX_MISORDER 100 /* aiortc's jitterbuffer.MAX_MISORDER */
#define HISTORY 128      /* aiortc's rtcrtpreceiver.RTP_HISTORY_SIZE */
#define STALL_S 0.5      /* packets but no frame for this long: skip the gap */
#define QUIET_S 0.25     /* a quiet layer hands on a frame at most this often (and keyframes) */
#define HELD_LEVELS 64   /* audio levels kept per hand-on: QUIET_S of 10 ms packets is 25 */

typedef struct {
    PyObject *data; /* the depayloaded payload; NULL: an empty slot */
    uint32_t timestamp;
    int marker;
} Slot;

typedef struct {
    PyObject_HEAD Slot slots[CAPACITY];
    long origin; /* the jitter buffer's first sequence number; -1: none yet */
    long max_seq; /* the NACK generator's newest; -1: none yet */
    uint64_t missing[65536 / 64];
    int missing_count;
    double last_frame; /* when the last frame came out (or the layer began) */
    int gap;           /* the next frame follows a skipped gap */
    /* aiortc's StreamStatistics of the layer's own packets (not its retransmissions) */
    long base_seq, stats_max_seq; /* -1: none yet */
    long long cycles, packets_received, jitter_q4, last_arrival, last_timestamp;
    /* Quiet: nobody takes this layer's frames now (the publication says so), so a frame is
     * handed on only if it is a keyframe, follows a gap or comes QUIET_S after the last one
     * handed on; the others are counted (held_frames, held_bytes) and go with that one. */
    int quiet;
    double shown_at; /* when a frame was last handed on */
    long long held_frames, held_bytes;
    /* Forwarding: every subscriber that takes this layer's frames is steady on it (the
     * publication says so, giving their streams), so each frame, packetized here, goes to
     * them from here (`send`: _rtp_send.fan_out; `frame_class`: rtp_output.Packetized) and
     * is then handed on only as a quiet layer's would be (or if a stream sent nothing). */
    PyObject *streams, *send, *frame_class; /* NULL: not forwarding */
    PyObject *sent; /* the last frame handed on, if forwarded: (Packetized, unsent, streams) */
    long long fanned; /* frames sent to a stream here, not yet taken by the publication */
    long picture_id;  /* VP8's, running on across the frames packetized here */
    uint32_t offset;  /* added to the timestamps of the frames sent here */
    uint32_t last_sent; /* the timestamp (offset added) of the last frame sent here */
    int has_last_sent;
    /* audio, for the speaker detector: the RFC 6464 level and arrival time of each packet
     * kept back since the last one handed on (the newest HELD_LEVELS; `level_count` counts
     * all), and those of the packets kept back before the last one handed on */
    unsigned char levels[HELD_LEVELS], held_levels[HELD_LEVELS];
    double level_at[HELD_LEVELS], held_level_at[HELD_LEVELS];
    long level_count, held_level_count;
} Layer;

static int newer(long a, long b) { /* aiortc's uint16_gt */
    long d = (a - b) & 0xFFFF;
    return 0 < d && d < 0x8000;
}

/* AudioPassThrough.add's rule: whether `seq` is newer than every packet before it (it
 * is then the newest). The Python path and the fast path share it (`max_seq`). */
static int take_newest(Layer *l, long seq) {
    if (l->max_seq >= 0 && !newer(seq, l->max_seq)) return 0;
    l->max_seq = seq;
    return 1;
}

/* Whether the newest audio packet (of `size` bytes, RFC 6464 `level` or -1) is kept back
 * (counted) because its stream is quiet or it was `taken` (sent to every stream that takes
 * it) and it is not QUIET_S after the last one handed on; 0: it is handed on, with the
 * levels of those kept back before it and when they came (`held_levels`), so that the
 * speaker detector hears every packet at its own time, as when each was handed on. */
static int keep_audio(Layer *l, Py_ssize_t size, long level, double now, int taken) {
    if (!(l->quiet || taken) || now - l->shown_at >= QUIET_S) {
        long n = l->level_count < HELD_LEVELS ? l->level_count : HELD_LEVELS;
        for (long i = 0; i < n; i++) { /* oldest first */
            long from = (l->level_count - n + i) % HELD_LEVELS;
            l->held_levels[i] = l->levels[from];
            l->held_level_at[i] = l->level_at[from];
        }
        l->held_level_count = n;
        l->level_count = 0;
        return 0;
    }
    if (size > 0) {
        l->held_frames++;
        l->held_bytes += size;
    }
    if (level >= 0) {
        l->levels[l->level_count % HELD_LEVELS] = (unsigned char)(level & 0x7F);
        l->level_at[l->level_count % HELD_LEVELS] = now;
        l->level_count++;
    }
    return 1;
}

/* Whether an audio packet of `size` bytes goes on: the newest (`take_newest`), and, its
 * stream quiet, QUIET_S after the last one handed on (one kept back is counted). */
static int audio_passes(Layer *l, long seq, Py_ssize_t size, double now) {
    return take_newest(l, seq) && !keep_audio(l, size, -1, now, 0);
}

static int is_missing(Layer *l, long seq) { return (l->missing[seq >> 6] >> (seq & 63)) & 1; }

static void set_missing(Layer *l, long seq) {
    if (!is_missing(l, seq)) {
        l->missing[seq >> 6] |= 1ULL << (seq & 63);
        l->missing_count++;
    }
}

static void clear_missing(Layer *l, long seq) {
    if (is_missing(l, seq)) {
        l->missing[seq >> 6] &= ~(1ULL << (seq & 63));
        l->missing_count--;
    }
}

/* NackGenerator.add: returns 1 when the packet opened a gap */
static int nack_add(Layer *l, long seq) {
    if (l->max_seq < 0) {
        l->max_seq = seq;
        return 0;
    }
    long old = l->max_seq;
    if (!newer(seq, old)) {
        clear_missing(l, seq);
        return 0;
    }
    long distance = (seq - old) & 0xFFFF;
    /* truncate: what was kept behind the old newest and is now more than HISTORY behind */
    long fallen = distance < HISTORY ? distance : HISTORY;
    for (long i = 0; i < fallen; i++) clear_missing(l, (old - HISTORY + i) & 0xFFFF);
    /* the ones between, of which truncate keeps the last HISTORY */
    long gap = distance - 1, first = gap > HISTORY ? distance - HISTORY : 1;
    for (long i = first; i < distance; i++) set_missing(l, (old + i) & 0xFFFF);
    l->max_seq = seq;
    return gap > 0;
}

/* the missing sequence numbers, ascending */
static PyObject *missing_list(Layer *l) {
    PyObject *out = PyList_New(0);
    if (out == NULL || l->missing_count == 0) return out;
    long seqs[HISTORY + 1];
    int n = 0;
    for (long i = 1; i <= HISTORY && n < l->missing_count; i++) {
        long seq = (l->max_seq - i) & 0xFFFF;
        if (is_missing(l, seq)) seqs[n++] = seq;
    }
    /* insertion sort: at most HISTORY numbers, nearly ordered (descending but one wrap) */
    for (int i = 1; i < n; i++) {
        long x = seqs[i];
        int j = i - 1;
        for (; j >= 0 && seqs[j] > x; j--) seqs[j + 1] = seqs[j];
        seqs[j + 1] = x;
    }
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(seqs[i]);
        if (v == NULL || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(v);
    }
    return out;
}

static Slot *slot_at(Layer *l, long seq) { return &l->slots[seq % CAPACITY]; }

static void clear_slot(Slot *s) { Py_CLEAR(s->data); }

/* JitterBuffer.remove */
static void jitter_remove(Layer *l, long count) {
    for (long i = 0; i < count; i++) {
        clear_slot(slot_at(l, l->origin));
        l->origin = (l->origin + 1) & 0xFFFF;
    }
}

/* JitterBuffer.smart_remove */
static int smart_remove(Layer *l, long count) {
    int have = 0;
    uint32_t timestamp = 0;
    for (long i = 0; i < CAPACITY; i++) {
        Slot *s = slot_at(l, l->origin);
        if (s->data != NULL) {
            if (i >= count && (!have || timestamp != s->timestamp)) break;
            timestamp = s->timestamp;
            have = 1;
        }
        clear_slot(s);
        l->origin = (l->origin + 1) & 0xFFFF;
        if (i == CAPACITY - 1) return 1;
    }
    return 0;
}

/* The first frame, removed from the buffer, if it is whole: a new reference to
 * (data, parts, timestamp), Py_None when it is not, NULL on a Python error. */
static PyObject *release_first(Layer *l) {
    long count = 0;
    uint32_t timestamp = slot_at(l, l->origin)->timestamp;
    for (;; count++) {
        if (count == CAPACITY) Py_RETURN_NONE;
        Slot *s = slot_at(l, l->origin + count);
        if (s->data == NULL) Py_RETURN_NONE;
        if (s->timestamp != timestamp) break; /* the next frame began: this one is whole */
        if (s->marker) {
            count++;
            break;
        }
    }
    PyObject *parts = PyList_New(count);
    if (parts == NULL) return NULL;
    Py_ssize_t size = 0;
    for (long i = 0; i < count; i++) {
        PyObject *data = slot_at(l, l->origin + i)->data;
        size += PyBytes_GET_SIZE(data);
        Py_INCREF(data);
        PyList_SET_ITEM(parts, i, data);
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, size);
    if (joined == NULL) {
        Py_DECREF(parts);
        return NULL;
    }
    char *at = PyBytes_AS_STRING(joined);
    for (long i = 0; i < count; i++) {
        PyObject *data = PyList_GET_ITEM(parts, i);
        memcpy(at, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        at += PyBytes_GET_SIZE(data);
    }
    jitter_remove(l, count);
    return Py_BuildValue("(NNk)", joined, parts, (unsigned long)timestamp);
}

/* PromptVideoBuffer._remove_frame, after the packet `seq` was added */
static PyObject *remove_frame(Layer *l, long seq) {
    Slot *added = slot_at(l, seq), *first = slot_at(l, l->origin);
    if (first->data == NULL) Py_RETURN_NONE;
    if (!added->marker && added->timestamp == first->timestamp &&
        slot_at(l, seq + 1)->data == NULL)
        Py_RETURN_NONE; /* the first frame's packet with no successor yet: not whole */
    return release_first(l);
}

/* PromptVideoBuffer.add: *pli set as aiortc's; a new reference as release_first's */
static PyObject *jitter_add(Layer *l, long seq, uint32_t timestamp, int marker,
                            PyObject *data, int *pli) {
    if (l->origin < 0) {
        l->origin = seq;
    } else {
        long delta = (seq - l->origin) & 0xFFFF, misorder = (l->origin - seq) & 0xFFFF;
        if (misorder < delta) { /* older than the origin */
            if (misorder < MAX_MISORDER) Py_RETURN_NONE;
            jitter_remove(l, CAPACITY); /* far older: the sender restarted */
            l->origin = seq;
            delta = 0;
            *pli = 1;
        }
        if (delta >= CAPACITY) { /* remove just enough frames to fit it */
            if (smart_remove(l, delta - CAPACITY + 1)) l->origin = seq;
            *pli = 1;
        }
    }
    Slot *s = slot_at(l, seq);
    Py_INCREF(data);
    Py_XSETREF(s->data, data);
    s->timestamp = timestamp;
    s->marker = marker;
    return remove_frame(l, seq);
}

/* skip_gap_in: drop the packets before the first whole frame after the first gap */
static int skip_gap(Layer *l) {
    if (l->origin < 0) return 0;
    long gap = -1;
    for (long i = 0; i < CAPACITY; i++)
        if (slot_at(l, l->origin + i)->data == NULL) {
            gap = i;
            break;
        }
    if (gap < 0) return 0;
    for (long i = gap + 2; i < CAPACITY; i++) {
        Slot *s = slot_at(l, l->origin + i), *before = slot_at(l, l->origin + i - 1);
        if (s->data != NULL && before->data != NULL && s->timestamp != before->timestamp) {
            for (long n = 0; n < i; n++) clear_missing(l, (l->origin + n) & 0xFFFF);
            jitter_remove(l, i);
            return 1;
        }
    }
    return 0;
}

static double clock_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static PyObject *layer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    double now;
    static char *names[] = {"now", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "d", names, &now)) return NULL;
    Layer *l = (Layer *)type->tp_alloc(type, 0); /* zeroed: empty slots, nothing missing */
    if (l == NULL) return NULL;
    l->origin = -1;
    l->max_seq = -1;
    l->last_frame = now;
    l->shown_at = -1e300; /* the first frame is handed on */
    l->base_seq = -1;
    l->stats_max_seq = -1;
    /* aiortc's Vp8Encoder starts at a random picture id */
    l->picture_id = (long)((uint64_t)(clock_s(CLOCK_REALTIME) * 1e9) % 32768);
    return (PyObject *)l;
}

static int layer_traverse(Layer *l, visitproc visit, void *arg) {
    Py_VISIT(l->streams);
    Py_VISIT(l->send);
    Py_VISIT(l->frame_class);
    Py_VISIT(l->sent);
    return 0;
}

static int layer_clear(Layer *l) {
    Py_CLEAR(l->streams);
    Py_CLEAR(l->send);
    Py_CLEAR(l->frame_class);
    Py_CLEAR(l->sent);
    return 0;
}

static void layer_dealloc(Layer *l) {
    PyObject_GC_UnTrack(l);
    layer_clear(l);
    for (int i = 0; i < CAPACITY; i++) clear_slot(&l->slots[i]);
    Py_TYPE(l)->tp_free((PyObject *)l);
}

#define VP8_PACKET_MAX 1300 /* aiortc's vpx.PACKET_MAX: descriptor and data */

/* A VP8 frame's RTP payloads as aiortc's Vp8Encoder.pack makes them (a 4-byte descriptor:
 * X, S on the first, I with this layer's 15-bit picture id; then up to 1296 bytes each),
 * the picture id moved on; a new list, or NULL on a Python error. */
static PyObject *vp8_packetize(Layer *l, const char *data, Py_ssize_t size) {
    const Py_ssize_t chunk = VP8_PACKET_MAX - 4;
    Py_ssize_t count = size > 0 ? (size + chunk - 1) / chunk : 0;
    PyObject *payloads = PyList_New(count);
    if (payloads == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t length = size - i * chunk < chunk ? size - i * chunk : chunk;
        PyObject *payload = PyBytes_FromStringAndSize(NULL, 4 + length);
        if (payload == NULL) {
            Py_DECREF(payloads);
            return NULL;
        }
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(payload);
        out[0] = i == 0 ? 0x90 : 0x80;
        out[1] = 0x80;
        out[2] = (unsigned char)(0x80 | (l->picture_id >> 8));
        out[3] = (unsigned char)(l->picture_id & 0xFF);
        memcpy(out + 4, data + i * chunk, (size_t)length);
        PyList_SET_ITEM(payloads, i, payload);
    }
    l->picture_id = (l->picture_id + 1) % 32768;
    return payloads;
}

/* [item], a new list; NULL on a Python error */
static PyObject *list_of(PyObject *item) {
    PyObject *list = PyList_New(1);
    if (list != NULL) PyList_SET_ITEM(list, 0, Py_NewRef(item));
    return list;
}

#define NTP_EPOCH_OFFSET 2208988800ULL /* 1900 to 1970, in seconds */

/* A frame (its RTP `payloads`, a new reference taken here; its `timestamp`, before the
 * offset; its RFC 6464 `level` or -1) sent to the streams this layer forwards to: l->sent
 * its (Packetized, the indices of the streams that sent nothing, those streams); 1 if
 * every stream sent it, 0 if one did not, -1 on a Python error. */
static int forward_frame(Layer *l, PyObject *payloads, uint32_t timestamp, long level) {
    PyObject *streams = Py_NewRef(l->streams), *send = Py_NewRef(l->send);
    PyObject *frame = NULL, *unsent = NULL, *ntp = NULL;
    uint32_t stamp = timestamp + l->offset;
    PyObject *stamp_obj = payloads != NULL ? PyLong_FromUnsignedLong(stamp) : NULL;
    PyObject *level_obj = level < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(level);
    if (stamp_obj != NULL && level_obj != NULL) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        /* rtp_output.ntp_now: the wall clock as 32.32 fixed point seconds since 1900 */
        uint64_t ntp_value = (((uint64_t)t.tv_sec + NTP_EPOCH_OFFSET) << 32) +
                             (uint64_t)(((double)t.tv_nsec / 1e9) * 4294967296.0);
        ntp = PyLong_FromUnsignedLongLong(ntp_value);
    }
    if (ntp != NULL)
        frame = PyObject_CallFunctionObjArgs(l->frame_class, payloads, stamp_obj, ntp, level_obj,
                                             NULL);
    if (frame != NULL) unsent = PyObject_CallFunctionObjArgs(send, streams, frame, NULL);
    int result = -1;
    if (unsent != NULL && PyList_Check(unsent)) {
        l->fanned += PyList_GET_SIZE(streams) - PyList_GET_SIZE(unsent);
        l->last_sent = stamp;
        l->has_last_sent = 1;
        result = PyList_GET_SIZE(unsent) == 0;
        Py_XSETREF(l->sent, PyTuple_Pack(3, frame, unsent, streams));
        if (l->sent == NULL) result = -1;
    } else if (unsent != NULL) {
        PyErr_SetString(PyExc_TypeError, "send returned no list");
    }
    Py_XDECREF(payloads);
    Py_XDECREF(stamp_obj);
    Py_XDECREF(level_obj);
    Py_XDECREF(ntp);
    Py_XDECREF(frame);
    Py_XDECREF(unsent);
    Py_DECREF(streams);
    Py_DECREF(send);
    return result;
}


/* Whether a layer keeps back a VP8 frame of `size` bytes that begins with `first` (not a
 * keyframe: forwarding.is_keyframe's rule), counting it, because it is quiet or `taken`
 * (forwarded to every stream that takes it); 0: it is handed on. */
static int keep_back(Layer *l, const char *first, Py_ssize_t size, int after_gap, double now,
                     int taken) {
    if (!(l->quiet || taken) || after_gap || now - l->shown_at >= QUIET_S) return 0;
    if (size >= 3 && !(first[0] & 0x01)) return 0; /* a keyframe */
    if (size > 0) {
        l->held_frames++;
        l->held_bytes += size;
    }
    return 1;
}

/* The frames and bytes kept back since the last frame handed on, as two new references
 * into `out` at `at`, and the count restarted: the frame handed on now carries them. */
static void hand_on(Layer *l, double now, PyObject *out, Py_ssize_t at) {
    PyTuple_SET_ITEM(out, at, PyLong_FromLongLong(l->held_frames));
    PyTuple_SET_ITEM(out, at + 1, PyLong_FromLongLong(l->held_bytes));
    l->held_frames = l->held_bytes = 0;
    l->shown_at = now;
}

/* One packet of the layer: a new reference to None (nothing follows) or to
 * (pli, lost, frame, parts, timestamp, after_gap, held frames, held bytes); NULL on a
 * Python error. A quiet layer's frame kept back leaves frame, parts and timestamp None
 * (the tuple then says only a NACK or a PLI, if any: None if neither). */
static PyObject *layer_packet(Layer *l, long seq, uint32_t timestamp, int marker,
                              PyObject *data, double now) {
    PyObject *lost = NULL;
    if (nack_add(l, seq) && (lost = missing_list(l)) == NULL) return NULL;
    int pli = 0;
    PyObject *frame = jitter_add(l, seq, timestamp, marker, data, &pli);
    if (frame == NULL) {
        Py_XDECREF(lost);
        return NULL;
    }
    if (pli) l->gap = 1; /* frames were dropped (a restart, an overflow): none follows whole */
    if (frame != Py_None) {
        l->last_frame = now;
        PyObject *joined = PyTuple_GET_ITEM(frame, 0);
        Py_CLEAR(l->sent);
        int taken = 0;
        /* not the frame after a gap (the publication stops its subscribers first: they
         * wait for a keyframe), nor one of padding only (it has no picture) */
        if (l->streams != NULL && PyList_GET_SIZE(l->streams) > 0 && !l->gap &&
            PyBytes_GET_SIZE(joined) > 0 &&
            (taken = forward_frame(
                 l, vp8_packetize(l, PyBytes_AS_STRING(joined), PyBytes_GET_SIZE(joined)),
                 (uint32_t)PyLong_AsUnsignedLongMask(PyTuple_GET_ITEM(frame, 2)), -1)) < 0) {
            /* sent to some streams, maybe: kept back, and the next frame follows a gap, so
             * every subscriber starts again at a keyframe */
            PyErr_WriteUnraisable(l->send != NULL ? l->send : Py_None);
            l->gap = 1;
            taken = 1;
        }
        if (keep_back(l, PyBytes_AS_STRING(joined), PyBytes_GET_SIZE(joined), l->gap, now,
                      taken)) {
            Py_CLEAR(l->sent);
            Py_SETREF(frame, Py_NewRef(Py_None));
        }
    } else if (now - l->last_frame > STALL_S && skip_gap(l)) {
        l->last_frame = now;
        l->gap = 1;
        pli = 1;
    }
    if (frame == Py_None) {
        Py_DECREF(frame);
        if (!pli && lost == NULL) Py_RETURN_NONE;
        return Py_BuildValue("(ONOOOOii)", pli ? Py_True : Py_False,
                             lost ? lost : Py_NewRef(Py_None), Py_None, Py_None, Py_None,
                             Py_False, 0, 0);
    }
    int after_gap = l->gap;
    l->gap = 0;
    PyObject *out = PyTuple_New(8);
    if (out == NULL) {
        Py_XDECREF(lost);
        Py_DECREF(frame);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, Py_NewRef(pli ? Py_True : Py_False));
    PyTuple_SET_ITEM(out, 1, lost ? lost : Py_NewRef(Py_None));
    for (int i = 0; i < 3; i++) PyTuple_SET_ITEM(out, 2 + i, Py_NewRef(PyTuple_GET_ITEM(frame, i)));
    PyTuple_SET_ITEM(out, 5, Py_NewRef(after_gap ? Py_True : Py_False));
    hand_on(l, now, out, 6);
    Py_DECREF(frame);
    if (PyTuple_GET_ITEM(out, 6) == NULL || PyTuple_GET_ITEM(out, 7) == NULL) Py_CLEAR(out);
    return out;
}

/* StreamStatistics.add for a packet of the layer; `arrival` in the clock rate's units */
static void count_packet(Layer *l, long seq, uint32_t timestamp, long long arrival) {
    int in_order = l->stats_max_seq < 0 || newer(seq, l->stats_max_seq);
    l->packets_received++;
    if (l->base_seq < 0) l->base_seq = seq;
    if (!in_order) return;
    if (l->stats_max_seq >= 0 && seq < l->stats_max_seq) l->cycles += 1 << 16;
    l->stats_max_seq = seq;
    if (timestamp != l->last_timestamp && l->packets_received > 1) {
        long long diff = (arrival - l->last_arrival) - ((long long)timestamp - l->last_timestamp);
        if (diff < 0) diff = -diff;
        l->jitter_q4 += diff - ((l->jitter_q4 + 8) >> 4);
    }
    l->last_arrival = arrival;
    l->last_timestamp = timestamp;
}

static int arg_range(PyObject *arg, const char *name, unsigned long long max,
                     unsigned long long *out) {
    *out = PyLong_AsUnsignedLongLong(arg);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s is out of range", name);
        }
        return -1;
    }
    if (*out > max) {
        PyErr_Format(PyExc_ValueError, "%s is out of range", name);
        return -1;
    }
    return 0;
}

/* add(seq, timestamp, marker, data, now): see _rtp_receive.pyi */
static PyObject *layer_add(Layer *l, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "add takes 5 arguments");
        return NULL;
    }
    unsigned long long seq, timestamp;
    if (arg_range(args[0], "the sequence number", 0xFFFF, &seq) < 0 ||
        arg_range(args[1], "the timestamp", 0xFFFFFFFF, &timestamp) < 0)
        return NULL;
    int marker = PyObject_IsTrue(args[2]);
    if (marker < 0) return NULL;
    if (!PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "the payload is bytes");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[4]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    return layer_packet(l, (long)seq, (uint32_t)timestamp, marker, args[3], now);
}

/* count(seq, timestamp, arrival): see _rtp_receive.pyi */
static PyObject *layer_count(Layer *l, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "count takes 3 arguments");
        return NULL;
    }
    unsigned long long seq, timestamp;
    if (arg_range(args[0], "the sequence number", 0xFFFF, &seq) < 0 ||
        arg_range(args[1], "the timestamp", 0xFFFFFFFF, &timestamp) < 0)
        return NULL;
    long long arrival = PyLong_AsLongLong(args[2]);
    if (arrival == -1 && PyErr_Occurred()) return NULL;
    count_packet(l, (long)seq, (uint32_t)timestamp, arrival);
    Py_RETURN_NONE;
}

/* audio(seq, size, now): see _rtp_receive.pyi */
static PyObject *layer_audio(Layer *l, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "audio takes 3 arguments");
        return NULL;
    }
    unsigned long long seq, size;
    if (arg_range(args[0], "the sequence number", 0xFFFF, &seq) < 0 ||
        arg_range(args[1], "the size", BUFFER, &size) < 0)
        return NULL;
    double now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    Py_CLEAR(l->sent); /* not sent from here */
    if (!audio_passes(l, (long)seq, (Py_ssize_t)size, now)) Py_RETURN_NONE;
    PyObject *out = PyTuple_New(2);
    if (out == NULL) return NULL;
    hand_on(l, now, out, 0);
    if (PyTuple_GET_ITEM(out, 0) == NULL || PyTuple_GET_ITEM(out, 1) == NULL) Py_CLEAR(out);
    return out;
}

/* take_statistics(base_seq, max_seq, cycles, received, jitter_q4, last_arrival,
 * last_timestamp): a StreamStatistics' state, counted on from here */
static PyObject *layer_take_statistics(Layer *l, PyObject *args) {
    PyObject *base, *max, *last_arrival, *last_timestamp;
    long long cycles, received, jitter_q4;
    if (!PyArg_ParseTuple(args, "OOLLLOO", &base, &max, &cycles, &received, &jitter_q4,
                          &last_arrival, &last_timestamp))
        return NULL;
    unsigned long long b = 0, m = 0, t = 0;
    long long a = 0;
    if ((base != Py_None && arg_range(base, "base_seq", 0xFFFF, &b) < 0) ||
        (max != Py_None && arg_range(max, "max_seq", 0xFFFF, &m) < 0) ||
        (last_timestamp != Py_None && arg_range(last_timestamp, "the timestamp", 0xFFFFFFFF, &t) < 0))
        return NULL;
    if (last_arrival != Py_None && (a = PyLong_AsLongLong(last_arrival)) == -1 && PyErr_Occurred())
        return NULL;
    if (cycles < 0 || received < 0 || jitter_q4 < 0) {
        PyErr_SetString(PyExc_ValueError, "a count is negative");
        return NULL;
    }
    l->base_seq = base == Py_None ? -1 : (long)b;
    l->stats_max_seq = max == Py_None ? -1 : (long)m;
    l->cycles = cycles;
    l->packets_received = received;
    l->jitter_q4 = jitter_q4;
    l->last_arrival = a;
    l->last_timestamp = (long long)t;
    Py_RETURN_NONE;
}

static PyObject *get_missing(Layer *l, void *closure) {
    PyObject *out = PyList_New(0);
    for (long seq = 0; out != NULL && seq < 65536; seq++) {
        if (!l->missing[seq >> 6]) {
            seq |= 63;
            continue;
        }
        if (!is_missing(l, seq)) continue;
        PyObject *v = PyLong_FromLong(seq);
        if (v == NULL || PyList_Append(out, v) < 0) Py_CLEAR(out);
        Py_XDECREF(v);
    }
    return out;
}

static PyObject *get_max_seq(Layer *l, void *closure) {
    if (l->max_seq < 0) Py_RETURN_NONE;
    return PyLong_FromLong(l->max_seq);
}

static PyObject *get_origin(Layer *l, void *closure) {
    if (l->origin < 0) Py_RETURN_NONE;
    return PyLong_FromLong(l->origin);
}

static PyObject *get_held(Layer *l, void *closure) {
    long held = 0;
    for (int i = 0; i < CAPACITY; i++) held += l->slots[i].data != NULL;
    return PyLong_FromLong(held);
}

static PyObject *get_quiet(Layer *l, void *c) { return PyBool_FromLong(l->quiet); }
static int set_quiet(Layer *l, PyObject *value, void *c) {
    int quiet = value == NULL ? 0 : PyObject_IsTrue(value);
    if (quiet < 0) return -1;
    l->quiet = quiet;
    return 0;
}
static PyObject *get_held_frames(Layer *l, void *c) { return PyLong_FromLongLong(l->held_frames); }
static PyObject *get_forwarding(Layer *l, void *c) { return PyBool_FromLong(l->streams != NULL); }
static PyObject *get_sent(Layer *l, void *c) {
    return Py_NewRef(l->sent != NULL ? l->sent : Py_None);
}
static PyObject *get_fanned(Layer *l, void *c) { return PyLong_FromLongLong(l->fanned); }
static int set_fanned(Layer *l, PyObject *value, void *c) {
    long long fanned = value == NULL ? 0 : PyLong_AsLongLong(value);
    if (fanned == -1 && PyErr_Occurred()) return -1;
    l->fanned = fanned;
    return 0;
}
static PyObject *get_picture_id(Layer *l, void *c) { return PyLong_FromLong(l->picture_id); }
static int set_picture_id(Layer *l, PyObject *value, void *c) {
    unsigned long long id;
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "the picture id cannot be deleted");
        return -1;
    }
    if (arg_range(value, "the picture id", 32767, &id) < 0) return -1;
    l->picture_id = (long)id;
    return 0;
}
static PyObject *get_last_sent(Layer *l, void *c) {
    if (!l->has_last_sent) Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(l->last_sent);
}
static PyObject *get_held_levels(Layer *l, void *c) {
    PyObject *out = PyTuple_New(l->held_level_count);
    for (long i = 0; out != NULL && i < l->held_level_count; i++) {
        PyObject *pair = Py_BuildValue("(di)", l->held_level_at[i], (int)l->held_levels[i]);
        if (pair == NULL) Py_CLEAR(out);
        else PyTuple_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *optional(long value) {
    if (value < 0) Py_RETURN_NONE;
    return PyLong_FromLong(value);
}

static PyObject *get_base_seq(Layer *l, void *c) { return optional(l->base_seq); }
static PyObject *get_stats_max_seq(Layer *l, void *c) { return optional(l->stats_max_seq); }
static PyObject *get_cycles(Layer *l, void *c) { return PyLong_FromLongLong(l->cycles); }
static PyObject *get_received(Layer *l, void *c) { return PyLong_FromLongLong(l->packets_received); }
static PyObject *get_jitter_q4(Layer *l, void *c) { return PyLong_FromLongLong(l->jitter_q4); }
static PyObject *get_last_arrival(Layer *l, void *c) {
    if (l->packets_received == 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(l->last_arrival);
}
static PyObject *get_last_timestamp(Layer *l, void *c) {
    if (l->packets_received == 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(l->last_timestamp);
}

/* forward(streams, send, frame_class) or forward(None): see _rtp_receive.pyi */
static PyObject *layer_forward(Layer *l, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs == 1 && args[0] == Py_None) {
        Py_CLEAR(l->streams);
        Py_CLEAR(l->send);
        Py_CLEAR(l->frame_class);
        Py_RETURN_NONE;
    }
    unsigned long long offset = 0;
    if ((nargs != 3 && nargs != 4) || !PyList_Check(args[0]) || !PyCallable_Check(args[1]) ||
        !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "forward(streams: list, send, frame_class, offset=0) or forward(None)");
        return NULL;
    }
    if (nargs == 4 && arg_range(args[3], "the offset", 0xFFFFFFFF, &offset) < 0) return NULL;
    l->offset = (uint32_t)offset;
    Py_XSETREF(l->streams, Py_NewRef(args[0]));
    Py_XSETREF(l->send, Py_NewRef(args[1]));
    Py_XSETREF(l->frame_class, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* take_held(): see _rtp_receive.pyi */
static PyObject *layer_take_held(Layer *l, PyObject *unused) {
    PyObject *out = Py_BuildValue("(LL)", l->held_frames, l->held_bytes);
    if (out != NULL) l->held_frames = l->held_bytes = 0;
    return out;
}

/* packetize(data): see _rtp_receive.pyi */
static PyObject *layer_packetize(Layer *l, PyObject *data) {
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "a VP8 frame is bytes");
        return NULL;
    }
    return vp8_packetize(l, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
}

static PyMethodDef layer_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))layer_forward, METH_FASTCALL,
     "forward(streams, send, frame_class) | forward(None): each frame, packetized here, "
     "goes to `streams` from here (send(streams, frame_class(payloads, timestamp, ntp)))"},
    {"take_held", (PyCFunction)layer_take_held, METH_NOARGS,
     "take_held() -> (frames, bytes) kept back since the last handed on, counted now: "
     "the next frame handed on does not carry them"},
    {"packetize", (PyCFunction)layer_packetize, METH_O,
     "packetize(data) -> a VP8 frame's RTP payloads, with this layer's picture id"},
    {"add", (PyCFunction)(void (*)(void))layer_add, METH_FASTCALL,
     "add(seq, timestamp, marker, data, now) -> None | (pli, lost, frame, parts, timestamp, "
     "after_gap, held_frames, held_bytes)"},
    {"count", (PyCFunction)(void (*)(void))layer_count, METH_FASTCALL,
     "count(seq, timestamp, arrival): StreamStatistics.add for a packet of the layer"},
    {"audio", (PyCFunction)(void (*)(void))layer_audio, METH_FASTCALL,
     "audio(seq, size, now) -> None | (held_frames, held_bytes): an audio stream's packet "
     "goes on if it is the newest and, quiet, due"},
    {"take_statistics", (PyCFunction)layer_take_statistics, METH_VARARGS,
     "take_statistics(base_seq, max_seq, cycles, received, jitter_q4, last_arrival, "
     "last_timestamp): count on from a StreamStatistics' state"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef layer_getset[] = {
    {"missing", (getter)get_missing, NULL, "every missing sequence number, ascending", NULL},
    {"max_seq", (getter)get_max_seq, NULL, "the newest sequence number, or None", NULL},
    {"origin", (getter)get_origin, NULL, "the jitter buffer's first sequence number", NULL},
    {"held", (getter)get_held, NULL, "packets in the jitter buffer", NULL},
    {"quiet", (getter)get_quiet, (setter)set_quiet,
     "nobody takes its frames: only keyframes, frames after a gap and one every QUIET_S "
     "are handed on, carrying the count of those kept back",
     NULL},
    {"held_frames", (getter)get_held_frames, NULL, "frames kept back since the last handed on",
     NULL},
    {"forwarding", (getter)get_forwarding, NULL, "frames go to streams from here (forward)",
     NULL},
    {"sent", (getter)get_sent, NULL,
     "the last frame handed on, if sent from here: (Packetized, indices of the streams "
     "that sent nothing, the streams); else None",
     NULL},
    {"fanned", (getter)get_fanned, (setter)set_fanned,
     "frames sent to a stream from here, until the publication takes the count", NULL},
    {"picture_id", (getter)get_picture_id, (setter)set_picture_id,
     "VP8: the next frame's picture id (0..32767)", NULL},
    {"last_sent", (getter)get_last_sent, NULL,
     "the timestamp (offset added) of the last frame sent from here, or None", NULL},
    {"held_levels", (getter)get_held_levels, NULL,
     "audio: (monotonic arrival time, RFC 6464 level) of each packet kept back before the "
     "last one handed on, oldest first (the newest 64)",
     NULL},
    {"base_seq", (getter)get_base_seq, NULL, "statistics: the first sequence number", NULL},
    {"stats_max_seq", (getter)get_stats_max_seq, NULL, "statistics: the newest in order", NULL},
    {"cycles", (getter)get_cycles, NULL, "statistics: sequence number wraps << 16", NULL},
    {"packets_received", (getter)get_received, NULL, "statistics: packets counted", NULL},
    {"jitter_q4", (getter)get_jitter_q4, NULL, "statistics: the jitter, in 1/16", NULL},
    {"last_arrival", (getter)get_last_arrival, NULL, "statistics: clock-rate units", NULL},
    {"last_timestamp", (getter)get_last_timestamp, NULL, "statistics: RTP timestamp", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LayerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_receive.LayerBuffer",
    .tp_basicsize = sizeof(Layer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)layer_traverse,
    .tp_clear = (inquiry)layer_clear,
    .tp_doc = "One simulcast layer's NACK tracking, jitter buffer and frame assembly.",
    .tp_new = layer_new,
    .tp_dealloc = (destructor)layer_dealloc,
    .tp_methods = layer_methods,
    .tp_getset = layer_getset,
};

/* -- the fast path: a simulcast layer's packet from the datagram to its frame ---------- */

#define FAST_MAX 16 /* layers routed on one connection: two simulcast m-lines of 3 and more */

typedef struct {
    uint32_t ssrc;
    int payload_type;
    PyObject *key;         /* the SSRC as the router's tables key it */
    Layer *layer;          /* its LayerBuffer */
    PyObject *path;        /* the ReceivePath its events go to */
    PyObject *receiver;    /* the RTCRtpReceiver it is routed to */
    PyObject *ssrc_table;  /* the transport's RtpRouter.ssrc_table */
    double clockrate;
    int audio;             /* an audio stream: each packet is a frame (AudioPassThrough) */
} Route;

typedef struct {
    PyObject_HEAD Route routes[FAST_MAX];
    int count;
    PyObject *sender; /* the FeedbackSender (its due_ns and send) */
    PyObject *log;    /* its TransportFeedback (record) */
    long long consumed; /* packets taken the whole way here */
} Fast;

static PyObject *S_enabled, *S_due_ns, *S_send, *S_record;

static void route_clear(Route *r) {
    Py_CLEAR(r->key);
    Py_CLEAR(r->layer);
    Py_CLEAR(r->path);
    Py_CLEAR(r->receiver);
    Py_CLEAR(r->ssrc_table);
}

static PyObject *fast_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (!PyArg_ParseTuple(args, "")) return NULL;
    return type->tp_alloc(type, 0);
}

static int fast_traverse(Fast *f, visitproc visit, void *arg) {
    for (int i = 0; i < f->count; i++) {
        Py_VISIT(f->routes[i].layer);
        Py_VISIT(f->routes[i].path);
        Py_VISIT(f->routes[i].receiver);
        Py_VISIT(f->routes[i].ssrc_table);
    }
    Py_VISIT(f->sender);
    Py_VISIT(f->log);
    return 0;
}

static int fast_clear(Fast *f) {
    for (int i = 0; i < f->count; i++) route_clear(&f->routes[i]);
    f->count = 0;
    Py_CLEAR(f->sender);
    Py_CLEAR(f->log);
    return 0;
}

static void fast_dealloc(Fast *f) {
    PyObject_GC_UnTrack(f);
    fast_clear(f);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static Route *route_of(Fast *f, uint32_t ssrc) {
    for (int i = 0; i < f->count; i++)
        if (f->routes[i].ssrc == ssrc) return &f->routes[i];
    return NULL;
}

/* route(ssrc, payload_type, layer, path, receiver, ssrc_table, clockrate, audio=False) */
static PyObject *fast_route(Fast *f, PyObject *args) {
    PyObject *key, *path, *receiver, *table;
    Layer *layer;
    int pt, audio = 0;
    double clockrate;
    if (!PyArg_ParseTuple(args, "O!iO!OOO!d|p", &PyLong_Type, &key, &pt, &LayerType, &layer,
                          &path, &receiver, &PyDict_Type, &table, &clockrate, &audio))
        return NULL;
    unsigned long long ssrc;
    if (arg_range(key, "the SSRC", 0xFFFFFFFF, &ssrc) < 0) return NULL;
    if (pt < 0 || pt > 127 || clockrate <= 0) {
        PyErr_SetString(PyExc_ValueError, "a payload type is 0..127, a clock rate positive");
        return NULL;
    }
    Route *r = route_of(f, (uint32_t)ssrc);
    if (r == NULL) {
        if (f->count == FAST_MAX) Py_RETURN_FALSE; /* these take the Python path */
        r = &f->routes[f->count++];
    }
    route_clear(r);
    r->ssrc = (uint32_t)ssrc;
    r->payload_type = pt;
    r->key = Py_NewRef(key);
    r->layer = (Layer *)Py_NewRef(layer);
    r->path = Py_NewRef(path);
    r->receiver = Py_NewRef(receiver);
    r->ssrc_table = Py_NewRef(table);
    r->clockrate = clockrate;
    r->audio = audio;
    Py_RETURN_TRUE;
}

/* feedback(sender, log): the transport-cc feedback its packets are recorded in */
static PyObject *fast_feedback(Fast *f, PyObject *args) {
    PyObject *sender, *log;
    if (!PyArg_ParseTuple(args, "OO", &sender, &log)) return NULL;
    Py_XSETREF(f->sender, Py_NewRef(sender));
    Py_XSETREF(f->log, Py_NewRef(log));
    Py_RETURN_NONE;
}

/* The header extensions in [v, v + len) of `profile`, read for the fast path: 0, the
 * transport-wide sequence number in *seq and the audio level byte in *level (-1: none),
 * or -1 where the Python path should
 * decide: anything malformed (a length that does not fit its kind: `parse` drops these),
 * a RID (the Python path learns the layers from them), or a MID that is not ASCII. A
 * routed packet's MID changes nothing (its SSRC is known: `route_by_mid` routes by it
 * first); aiortc puts one on every packet, Chromium on a stream's first ones. */
static int scan_extensions(unsigned profile, const unsigned char *v, long len,
                           const long ids[KINDS], long *seq, long *level) {
    static const int sizes[KINDS] = {[ABS_SEND_TIME] = 3, [TRANSMISSION_OFFSET] = 3,
                                     [AUDIO_LEVEL] = 1, [TRANSPORT_SEQ] = 2};
    *seq = *level = -1;
    if (profile != 0xBEDE && profile != 0x1000) return 0;
    long pos = 0;
    while (pos < len) {
        if (v[pos] == 0) {
            pos++;
            continue;
        }
        long id, length;
        if (profile == 0xBEDE) {
            id = (v[pos] & 0xF0) >> 4;
            length = (v[pos] & 0x0F) + 1;
            pos += 1;
        } else {
            if (len < pos + 2) return -1;
            id = v[pos];
            length = v[pos + 1];
            pos += 2;
        }
        if (len < pos + length) return -1;
        for (int k = 0; k < KINDS; k++) {
            if (ids[k] != id) continue;
            if (k == MID) { /* routed by SSRC, as `route_by_mid` does a known SSRC */
                for (long i = 0; i < length; i++)
                    if (v[pos + i] & 0x80) return -1; /* not ASCII: `parse`'s utf-8 decides */
                break;
            }
            if (k == RID || k == REPAIRED_RID || length != sizes[k]) return -1;
            if (k == TRANSPORT_SEQ) *seq = ((long)v[pos] << 8) | v[pos + 1];
            if (k == AUDIO_LEVEL) *level = v[pos];
            break; /* the first kind with this id, as `parse` reads it */
        }
        pos += length;
    }
    return 0;
}

/* A routed audio packet, counted: *event a new reference to None (a duplicate or an old
 * packet: dropped; or kept back, its stream quiet) or to (path, ssrc, payload type,
 * payload, timestamp, level or None, held frames, held bytes); 1, or -1 on a Python
 * error. */
static int audio_event(Route *r, uint32_t ssrc, long seq, uint32_t timestamp,
                       const unsigned char *payload, Py_ssize_t size, long level,
                       PyObject **event) {
    Layer *l = r->layer;
    double now = clock_s(CLOCK_MONOTONIC);
    if (!take_newest(l, seq)) {
        *event = Py_NewRef(Py_None);
        return 1;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)payload, size);
    if (data == NULL) return -1;
    Py_CLEAR(l->sent);
    int taken = 0;
    if (l->streams != NULL && PyList_GET_SIZE(l->streams) > 0 && size > 0 &&
        (taken = forward_frame(l, list_of(data), timestamp, level)) < 0) {
        PyErr_WriteUnraisable(l->send != NULL ? l->send : Py_None); /* sent to some, maybe */
        taken = 1;
    }
    if (keep_audio(l, size, level, now, taken)) {
        Py_CLEAR(l->sent);
        Py_DECREF(data);
        *event = Py_NewRef(Py_None);
        return 1;
    }
    *event = PyTuple_New(8);
    if (*event == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyTuple_SET_ITEM(*event, 0, Py_NewRef(r->path));
    PyTuple_SET_ITEM(*event, 1, PyLong_FromUnsignedLong(ssrc));
    PyTuple_SET_ITEM(*event, 2, PyLong_FromLong(r->payload_type));
    PyTuple_SET_ITEM(*event, 3, data);
    PyTuple_SET_ITEM(*event, 4, PyLong_FromUnsignedLong(timestamp));
    PyTuple_SET_ITEM(*event, 5, level < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(level));
    hand_on(l, now, *event, 6);
    for (int i = 1; i < 8; i++)
        if (PyTuple_GET_ITEM(*event, i) == NULL) {
            Py_CLEAR(*event);
            return -1;
        }
    return 1;
}

/* The packet in buffer[0, len) taken the whole way, if it is a routed layer's: 1 (done;
 * *event a new reference to None or to the event), 0 (not this path's: the Python path
 * parses it), -1 (a Python error). */
static int fast_take(Fast *f, long len, const long ids[KINDS], long long arrival_ns,
                     PyObject **event) {
    const unsigned char *d = buffer;
    if (len < RTP_HEADER || (d[0] >> 6) != 2) return 0;
    uint32_t ssrc = ((uint32_t)d[8] << 24) | ((uint32_t)d[9] << 16) | ((uint32_t)d[10] << 8) | d[11];
    Route *r = route_of(f, ssrc);
    if (r == NULL || (d[1] & 0x7F) != r->payload_type) return 0;
    /* still routed to the receiver, which still receives */
    PyObject *routed = PyDict_GetItemWithError(r->ssrc_table, r->key);
    if (routed != r->receiver) return PyErr_Occurred() ? -1 : 0;
    PyObject *enabled = PyObject_GetAttr(r->receiver, S_enabled);
    if (enabled == NULL) return -1;
    int on = PyObject_IsTrue(enabled);
    Py_DECREF(enabled);
    if (on <= 0) return on;
    int padding = (d[0] >> 5) & 1, extension = (d[0] >> 4) & 1, cc = d[0] & 0x0F;
    long pos = RTP_HEADER + 4 * cc, tseq = -1, level = -1;
    if (len < pos) return 0;
    if (extension) {
        if (len < pos + 4) return 0;
        unsigned profile = ((unsigned)d[pos] << 8) | d[pos + 1];
        long ext_len = (((long)d[pos + 2] << 8) | d[pos + 3]) * 4;
        pos += 4;
        if (len < pos + ext_len) return 0;
        if (scan_extensions(profile, d + pos, ext_len, ids, &tseq, &level) < 0) return 0;
        pos += ext_len;
    }
    long padding_size = padding ? d[len - 1] : 0;
    if (padding && (padding_size == 0 || padding_size > len - pos)) return 0;
    if (tseq >= 0 && f->log == NULL) return 0; /* the Python path starts the feedback */
    long seq = ((long)d[2] << 8) | d[3];
    uint32_t timestamp = ((uint32_t)d[4] << 24) | ((uint32_t)d[5] << 16) | ((uint32_t)d[6] << 8) | d[7];

    /* DirectReceive's transport-cc record and, when due, its feedback */
    if (tseq >= 0) {
        PyObject *a[4] = {f->log, PyLong_FromLong(tseq), PyLong_FromLongLong(arrival_ns / 1000),
                          PyLong_FromUnsignedLong(ssrc)};
        PyObject *done = NULL;
        if (a[1] && a[2] && a[3])
            done = PyObject_VectorcallMethod(S_record, a, 4, NULL);
        Py_XDECREF(a[1]);
        Py_XDECREF(a[2]);
        Py_XDECREF(a[3]);
        if (done == NULL) return -1;
        Py_DECREF(done);
        PyObject *due = PyObject_GetAttr(f->sender, S_due_ns);
        if (due == NULL) return -1;
        long long due_ns = PyLong_AsLongLong(due);
        Py_DECREF(due);
        if (due_ns == -1 && PyErr_Occurred()) return -1;
        if (arrival_ns >= due_ns) {
            PyObject *now = PyLong_FromLongLong(arrival_ns);
            if (now == NULL) return -1;
            PyObject *sent = PyObject_CallMethodOneArg(f->sender, S_send, now);
            Py_DECREF(now);
            if (sent == NULL) return -1;
            Py_DECREF(sent);
        }
    }
    f->consumed++;
    /* ReceivePath.handle: the statistics, the VP8 payload, the layer */
    count_packet(r->layer, seq, timestamp, (long long)(clock_s(CLOCK_REALTIME) * r->clockrate));
    const unsigned char *payload = d + pos;
    Py_ssize_t size = len - pos - padding_size, at = 0;
    if (r->audio) return audio_event(r, ssrc, seq, timestamp, payload, size, level, event);
    if (size > 0 && (at = vp8_offset(payload, size)) < 0) {
        *event = Py_NewRef(Py_None); /* aiortc drops it */
        return 1;
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)payload + at, size - at);
    if (data == NULL) return -1;
    PyObject *result = layer_packet(r->layer, seq, timestamp, d[1] >> 7, data,
                                    clock_s(CLOCK_MONOTONIC));
    Py_DECREF(data);
    if (result == NULL) return -1;
    if (result == Py_None) {
        *event = result;
        return 1;
    }
    /* (path, ssrc, payload type, pli, lost, frame, parts, timestamp, after_gap, held frames,
     * held bytes) */
    *event = PyTuple_New(11);
    if (*event == NULL) {
        Py_DECREF(result);
        return -1;
    }
    PyObject *ssrc_obj = PyLong_FromUnsignedLong(ssrc), *pt = PyLong_FromLong(r->payload_type);
    if (ssrc_obj == NULL || pt == NULL) {
        Py_XDECREF(ssrc_obj);
        Py_XDECREF(pt);
        Py_DECREF(result);
        Py_CLEAR(*event);
        return -1;
    }
    PyTuple_SET_ITEM(*event, 0, Py_NewRef(r->path));
    PyTuple_SET_ITEM(*event, 1, ssrc_obj);
    PyTuple_SET_ITEM(*event, 2, pt);
    for (int i = 0; i < 8; i++) PyTuple_SET_ITEM(*event, 3 + i, Py_NewRef(PyTuple_GET_ITEM(result, i)));
    Py_DECREF(result);
    return 1;
}

/* The fast path's receive after the arguments are read: see `receive` */
static PyObject *fast_receive_core(Fast *f, void *session, void *fn, const char *data,
                                   Py_ssize_t size, PyObject *ids_obj, long long arrival_ns) {
    if (packet_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "classes() was not called");
        return NULL;
    }
    long ids[KINDS];
    if (read_ids(ids_obj, ids) < 0) return NULL;
    if (size > BUFFER) Py_RETURN_NONE; /* pylibsrtp refuses these too */
    memcpy(buffer, data, (size_t)size);
    int len = (int)size;
    if (((srtp_unprotect_fn)fn)(session, buffer, &len) != 0) Py_RETURN_NONE; /* not ours */
    PyObject *event = NULL;
    int taken = fast_take(f, len, ids, arrival_ns, &event);
    if (taken < 0) return NULL;
    if (taken) return event;
    int malformed = 0;
    PyObject *packet = parse(len, ids, &malformed);
    if (packet == NULL && malformed) Py_RETURN_NONE; /* aiortc drops these too */
    return packet;
}

/* receive(session, unprotect, data, ids, arrival_ns): see _rtp_receive.pyi */
static PyObject *fast_receive(Fast *f, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "receive takes 5 arguments");
        return NULL;
    }
    void *session, *fn;
    if (address(args[0], &session) < 0 || address(args[1], &fn) < 0) return NULL;
    if (session == NULL || fn == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session or function");
        return NULL;
    }
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(args[2], &data, &size) < 0) return NULL;
    long long arrival_ns = PyLong_AsLongLong(args[4]);
    if (arrival_ns == -1 && PyErr_Occurred()) return NULL;
    return fast_receive_core(f, session, fn, data, size, args[3], arrival_ns);
}

static PyObject *get_consumed(Fast *f, void *c) { return PyLong_FromLongLong(f->consumed); }
static PyObject *get_routes(Fast *f, void *c) { return PyLong_FromLong(f->count); }

static PyMethodDef fast_methods[] = {
    {"receive", (PyCFunction)(void (*)(void))fast_receive, METH_FASTCALL,
     "receive(session, unprotect, data, ids, arrival_ns) -> None | RtpPacket | event"},
    {"route", (PyCFunction)fast_route, METH_VARARGS,
     "route(ssrc, payload_type, layer, path, receiver, ssrc_table, clockrate, audio=False) "
     "-> bool"},
    {"feedback", (PyCFunction)fast_feedback, METH_VARARGS, "feedback(sender, log)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fast_getset[] = {
    {"consumed", (getter)get_consumed, NULL, "packets taken the whole way here", NULL},
    {"routes", (getter)get_routes, NULL, "layers routed here", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_receive.FastLayers",
    .tp_basicsize = sizeof(Fast),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One connection's simulcast layers and audio streams, received from the "
              "datagram to the frame.",
    .tp_new = fast_new,
    .tp_dealloc = (destructor)fast_dealloc,
    .tp_traverse = (traverseproc)fast_traverse,
    .tp_clear = (inquiry)fast_clear,
    .tp_methods = fast_methods,
    .tp_getset = fast_getset,
};

/* -- the arrival clock: the kernel's receive time of each datagram (arrival.py) -------- */

#define OLDEST_NS 1000000000LL /* a stamp older than this is another datagram's */

typedef struct {
    PyObject_HEAD PyObject *nominated; /* aioice's Connection._nominated */
    PyObject *socket_of;               /* pair -> its socket's fd, or -1 */
    PyObject *pair;                    /* the pair the fd is of (NULL: none yet) */
    long fd;
    long long last;
    long long stamped;
} Clock;

static long long wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static PyObject *clock_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *nominated, *socket_of;
    if (!PyArg_ParseTuple(args, "O!O", &PyDict_Type, &nominated, &socket_of)) return NULL;
    Clock *c = (Clock *)type->tp_alloc(type, 0);
    if (c == NULL) return NULL;
    c->nominated = Py_NewRef(nominated);
    c->socket_of = Py_NewRef(socket_of);
    c->fd = -1;
    return (PyObject *)c;
}

static int clock_traverse(Clock *c, visitproc visit, void *arg) {
    Py_VISIT(c->nominated);
    Py_VISIT(c->socket_of);
    Py_VISIT(c->pair);
    return 0;
}

static int clock_clear(Clock *c) {
    Py_CLEAR(c->nominated);
    Py_CLEAR(c->socket_of);
    Py_CLEAR(c->pair);
    return 0;
}

static void clock_dealloc(Clock *c) {
    PyObject_GC_UnTrack(c);
    clock_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* The arrival time of the datagram being delivered for `component` now (ns), or -1 on a
 * Python error. */
static long long clock_now(Clock *c, PyObject *component) {
    long long now = wall_ns();
    if (c->nominated == NULL) return now;
    PyObject *pair = PyDict_GetItemWithError(c->nominated, component);
    if (pair == NULL && PyErr_Occurred()) return -1;
    if (pair != c->pair) {
        Py_XINCREF(pair);
        Py_XSETREF(c->pair, pair);
        PyObject *fd = PyObject_CallOneArg(c->socket_of, pair ? pair : Py_None);
        if (fd == NULL) return -1;
        c->fd = PyLong_AsLong(fd);
        Py_DECREF(fd);
        if (c->fd == -1 && PyErr_Occurred()) return -1;
    }
    struct timespec ts;
    if (c->fd < 0 || c->fd > INT32_MAX || ioctl((int)c->fd, SIOCGSTAMPNS, &ts) != 0)
        return now; /* the first call (stamping starts now), or a closed socket */
    long long stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, last = c->last;
    c->last = stamp;
    if (stamp == last || !(now - OLDEST_NS < stamp && stamp <= now)) return now;
    c->stamped++;
    return stamp;
}

static PyObject *clock_now_ns(Clock *c, PyObject *component) {
    long long now = clock_now(c, component);
    return now == -1 && PyErr_Occurred() ? NULL : PyLong_FromLongLong(now);
}

static PyObject *get_stamped(Clock *c, void *closure) { return PyLong_FromLongLong(c->stamped); }

static PyMethodDef clock_methods[] = {
    {"now_ns", (PyCFunction)clock_now_ns, METH_O,
     "now_ns(component) -> the arrival time of the datagram being delivered now (ns)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef clock_getset[] = {
    {"stamped", (getter)get_stamped, NULL, "datagrams given the kernel's time", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ClockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_receive.ArrivalClock",
    .tp_basicsize = sizeof(Clock),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Arrival times of the datagrams one aioice Connection delivers, in ns.",
    .tp_new = clock_new,
    .tp_dealloc = (destructor)clock_dealloc,
    .tp_traverse = (traverseproc)clock_traverse,
    .tp_clear = (inquiry)clock_clear,
    .tp_methods = clock_methods,
    .tp_getset = clock_getset,
};

/* -- the datagram's entry: one aioice StunProtocol's datagram_received ------------------ */

typedef struct {
    PyObject_HEAD vectorcallfunc vectorcall;
    PyObject *stun;      /* aioice's own datagram_received: STUN, DTLS */
    PyObject *direct;    /* the connection's DirectReceive (its Python path) */
    PyObject *component; /* the protocol's ICE component */
    PyObject *dtls;      /* the RTCDtlsTransport */
    PyObject *connected; /* its State.CONNECTED */
    Fast *fast;
    Clock *clock;
    PyObject *srtp; /* the rx Session whose srtp_t is at `session` (NULL: none yet) */
    void *session, *unprotect;
    long long handed; /* RTP and RTCP datagrams handed on */
} Entry;

static PyObject *S_rx_srtp, *S_state, *S_dict, *S_handle_rtp_data, *S_rx_bytes, *S_rx_packets,
    *S_handled, *S_map, *S_ids, *S_after_unprotect, *S_event;

static int entry_traverse(Entry *e, visitproc visit, void *arg) {
    Py_VISIT(e->stun);
    Py_VISIT(e->direct);
    Py_VISIT(e->dtls);
    Py_VISIT(e->connected);
    Py_VISIT(e->fast);
    Py_VISIT(e->clock);
    Py_VISIT(e->srtp);
    return 0;
}

static int entry_clear(Entry *e) {
    Py_CLEAR(e->stun);
    Py_CLEAR(e->direct);
    Py_CLEAR(e->component);
    Py_CLEAR(e->dtls);
    Py_CLEAR(e->connected);
    Py_CLEAR(e->fast);
    Py_CLEAR(e->clock);
    Py_CLEAR(e->srtp);
    return 0;
}

static void entry_dealloc(Entry *e) {
    PyObject_GC_UnTrack(e);
    entry_clear(e);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

/* attr += n on a Python object */
static int add_to(PyObject *obj, PyObject *name, long n) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    PyObject *step = PyLong_FromLong(n);
    PyObject *sum = step ? PyNumber_Add(v, step) : NULL;
    Py_DECREF(v);
    Py_XDECREF(step);
    if (sum == NULL) return -1;
    int r = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return r;
}

/* Whether DirectReceive would take this datagram itself as SRTP now: 1, 0 (its Python
 * path decides), -1 (a Python error). */
static int entry_ours(Entry *e, const unsigned char *d, Py_ssize_t len) {
    if (len < 2 || (192 <= d[1] && d[1] <= 208)) return 0; /* SRTCP */
    PyObject *srtp = PyObject_GetAttr(e->dtls, S_rx_srtp);
    if (srtp == NULL) return -1;
    Py_DECREF(srtp); /* compared by identity only */
    if (srtp == Py_None || srtp != e->srtp || e->session == NULL) return 0;
    PyObject *state = PyObject_GetAttr(e->dtls, S_state);
    if (state == NULL) return -1;
    Py_DECREF(state);
    if (state != e->connected) return 0;
    PyObject *dict = PyObject_GetAttr(e->dtls, S_dict);
    if (dict == NULL) return -1;
    int replaced = PyDict_Check(dict) ? PyDict_Contains(dict, S_handle_rtp_data) : 1;
    Py_DECREF(dict);
    if (replaced) return replaced < 0 ? -1 : 0; /* a test replaced _handle_rtp_data */
    return 1;
}

static PyObject *entry_call(Entry *e, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "datagram_received(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    const unsigned char *d = PyBytes_Check(data) ? (const unsigned char *)PyBytes_AS_STRING(data) : NULL;
    Py_ssize_t len = d ? PyBytes_GET_SIZE(data) : 0;
    if (d == NULL || len == 0 || d[0] < 128 || d[0] > 191) /* STUN, DTLS, not RTP */
        return PyObject_Vectorcall(e->stun, args, 2, NULL);
    e->handed++;
    int ours = entry_ours(e, d, len);
    if (ours < 0) return NULL;
    PyObject *to_python[2] = {data, e->component};
    if (!ours) return PyObject_Vectorcall(e->direct, to_python, 2, NULL);
    /* DirectReceive's counts, its arrival stamp, then the C receive */
    if (add_to(e->dtls, S_rx_bytes, (long)len) < 0 || add_to(e->dtls, S_rx_packets, 1) < 0 ||
        add_to(e->direct, S_handled, 1) < 0)
        return NULL;
    long long arrival_ns = clock_now(e->clock, e->component);
    if (arrival_ns == -1 && PyErr_Occurred()) return NULL;
    PyObject *map = PyObject_GetAttr(e->dtls, S_map);
    if (map == NULL) return NULL;
    PyObject *ids = PyObject_GetAttr(map, S_ids);
    Py_DECREF(map);
    if (ids == NULL) return NULL;
    PyObject *result = fast_receive_core(e->fast, e->session, e->unprotect, (const char *)d, len,
                                         ids, arrival_ns);
    Py_DECREF(ids);
    if (result == NULL || result == Py_None) return result;
    PyObject *name = PyTuple_CheckExact(result) ? S_event : S_after_unprotect;
    PyObject *arrival = PyLong_FromLongLong(arrival_ns);
    PyObject *out = arrival ? PyObject_CallMethodObjArgs(e->direct, name, result, arrival, NULL) : NULL;
    Py_XDECREF(arrival);
    Py_DECREF(result);
    return out;
}

/* RtpDemux(protocol_datagram_received, direct, component, dtls, connected, fast, clock) */
static PyObject *entry_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *stun, *direct, *component, *dtls, *connected;
    Fast *fast;
    Clock *clock;
    if (!PyArg_ParseTuple(args, "OOO!OOO!O!", &stun, &direct, &PyLong_Type, &component, &dtls,
                          &connected, &FastType, &fast, &ClockType, &clock))
        return NULL;
    Entry *e = (Entry *)type->tp_alloc(type, 0);
    if (e == NULL) return NULL;
    e->vectorcall = (vectorcallfunc)entry_call;
    e->stun = Py_NewRef(stun);
    e->direct = Py_NewRef(direct);
    e->component = Py_NewRef(component);
    e->dtls = Py_NewRef(dtls);
    e->connected = Py_NewRef(connected);
    e->fast = (Fast *)Py_NewRef(fast);
    e->clock = (Clock *)Py_NewRef(clock);
    return (PyObject *)e;
}

/* srtp(session, address, unprotect): the rx Session DirectReceive found, its srtp_t */
static PyObject *entry_srtp(Entry *e, PyObject *args) {
    PyObject *srtp, *address_obj, *fn_obj;
    if (!PyArg_ParseTuple(args, "OOO", &srtp, &address_obj, &fn_obj)) return NULL;
    void *session, *fn;
    if (address(address_obj, &session) < 0 || address(fn_obj, &fn) < 0) return NULL;
    Py_XSETREF(e->srtp, Py_NewRef(srtp));
    e->session = session;
    e->unprotect = fn;
    Py_RETURN_NONE;
}

static PyObject *get_handed(Entry *e, void *c) { return PyLong_FromLongLong(e->handed); }

static PyMethodDef entry_methods[] = {
    {"srtp", (PyCFunction)entry_srtp, METH_VARARGS,
     "srtp(session, address, unprotect): the receiving SRTP session and its srtp_t"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef entry_getset[] = {
    {"handed", (getter)get_handed, NULL, "RTP and RTCP datagrams handed on", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject EntryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_receive.RtpDemux",
    .tp_basicsize = sizeof(Entry),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Entry, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_doc = "One aioice StunProtocol's datagram_received: RTP to the C receive path.",
    .tp_new = entry_new,
    .tp_dealloc = (destructor)entry_dealloc,
    .tp_traverse = (traverseproc)entry_traverse,
    .tp_clear = (inquiry)entry_clear,
    .tp_methods = entry_methods,
    .tp_getset = entry_getset,
};

static PyObject *classes(PyObject *module, PyObject *args) {
    PyObject *packet, *extensions;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &packet, &PyType_Type, &extensions))
        return NULL;
    Py_INCREF(packet);
    Py_INCREF(extensions);
    Py_XSETREF(packet_class, (PyTypeObject *)packet);
    Py_XSETREF(extensions_class, (PyTypeObject *)extensions);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"unprotect_parse", (PyCFunction)(void (*)(void))unprotect_parse, METH_FASTCALL,
     "unprotect_parse(session, unprotect, data, ids) -> RtpPacket | None"},
    {"vp8_payload", vp8_payload, METH_O, "vp8_payload(payload) -> the payload after its descriptor"},
    {"classes", classes, METH_VARARGS, "classes(RtpPacket, HeaderExtensions): what to make"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rtp_receive",
                                    "The SFU's per-packet receive work (see _rtp_receive.c).",
                                    -1, methods};

static int intern(PyObject **into, const char *name) {
    *into = PyUnicode_InternFromString(name);
    return *into == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__rtp_receive(void) {
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL || intern(&S_version, "version") < 0 ||
        intern(&S_marker, "marker") < 0 || intern(&S_payload_type, "payload_type") < 0 ||
        intern(&S_sequence_number, "sequence_number") < 0 ||
        intern(&S_timestamp, "timestamp") < 0 || intern(&S_ssrc, "ssrc") < 0 ||
        intern(&S_csrc, "csrc") < 0 || intern(&S_extensions, "extensions") < 0 ||
        intern(&S_payload, "payload") < 0 || intern(&S_padding_size, "padding_size") < 0 ||
        intern(&S_mid, "mid") < 0 ||
        intern(&S_repaired_rtp_stream_id, "repaired_rtp_stream_id") < 0 ||
        intern(&S_rtp_stream_id, "rtp_stream_id") < 0 ||
        intern(&S_abs_send_time, "abs_send_time") < 0 ||
        intern(&S_transmission_offset, "transmission_offset") < 0 ||
        intern(&S_audio_level, "audio_level") < 0 ||
        intern(&S_transport_sequence_number, "transport_sequence_number") < 0 ||
        intern(&S_enabled, "_enabled") < 0 || intern(&S_due_ns, "due_ns") < 0 ||
        intern(&S_send, "send") < 0 || intern(&S_record, "record") < 0 ||
        intern(&S_rx_srtp, "_rx_srtp") < 0 || intern(&S_state, "_state") < 0 ||
        intern(&S_dict, "__dict__") < 0 || intern(&S_handle_rtp_data, "_handle_rtp_data") < 0 ||
        intern(&S_rx_bytes, "_RTCDtlsTransport__rx_bytes") < 0 ||
        intern(&S_rx_packets, "_RTCDtlsTransport__rx_packets") < 0 ||
        intern(&S_handled, "handled") < 0 || intern(&S_map, "_rtp_header_extensions_map") < 0 ||
        intern(&S_ids, "_HeaderExtensionsMap__ids") < 0 ||
        intern(&S_after_unprotect, "after_unprotect") < 0 || intern(&S_event, "event") < 0)
        return NULL;
    if (PyType_Ready(&LayerType) < 0 || PyType_Ready(&FastType) < 0 ||
        PyType_Ready(&ClockType) < 0 || PyType_Ready(&EntryType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "LayerBuffer", (PyObject *)&LayerType) < 0 ||
        PyModule_AddObjectRef(m, "FastLayers", (PyObject *)&FastType) < 0 ||
        PyModule_AddObjectRef(m, "ArrivalClock", (PyObject *)&ClockType) < 0 ||
        PyModule_AddObjectRef(m, "RtpDemux", (PyObject *)&EntryType) < 0 ||
        PyModule_AddIntConstant(m, "CAPACITY", CAPACITY) < 0 ||
        PyModule_AddIntConstant(m, "MAX_MISORDER", MAX_MISORDER) < 0 ||
        PyModule_AddIntConstant(m, "HISTORY", HISTORY) < 0 ||
        PyModule_AddObject(m, "STALL_S", PyFloat_FromDouble(STALL_S)) < 0 ||
        PyModule_AddObject(m, "QUIET_S", PyFloat_FromDouble(QUIET_S)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

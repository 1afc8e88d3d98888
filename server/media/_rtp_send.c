/* The SFU's per-packet send work in C: a subscriber's RTP packets, SRTP, and the
 * system calls. Python reaches it through a subscriber's `Stream` (one per RtpOutput,
 * rtp_output.py; `fan_out` sends a frame to many), which sends on a `Wire` (made by
 * aiortc_internals/transport.py's RtpLink). Before it, Python's per-packet work
 * (writing each packet, pylibsrtp's protect, `sendto`/`sendmsg`) was most of the SFU's
 * CPU per forwarded stream, 1.7-2.0x Janus's (docs/benchmarks.md).
 *
 * Python keeps every decision (which frame, which layer, which subscriber) and the SRTP
 * session; a `Stream` keeps what changes per frame (sequence number, timestamp origin,
 * counts) and the NACK history list. One call here does, per frame and subscriber, what
 * was Python's: build the header and extensions, check that the transport still sends
 * where it did (DTLS state, SRTP session, nominated ICE pair, asyncio's backlog; see
 * WireObject), write each packet
 * (shared header parts + payload), keep it in the history, protect it with libsrtp (the
 * `srtp_protect` of pylibsrtp's own libsrtp, reached through its address), send it, a run
 * of equal-size packets in one `sendmsg` with UDP_SEGMENT (GSO) where the kernel takes
 * it, and count what went for aiortc's sender reports.
 *
 * Whatever the socket does not take (full: EAGAIN; or no socket at hand, e.g.
 * TURN-relayed, or asyncio already queueing) goes, protected and in order, through
 * asyncio's `sendto`.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_SEGMENTS 64    /* UDP_MAX_SEGMENTS */
#define MAX_RUN_BYTES 65000 /* one send stays under the 64 KiB IP datagram limit */
#define SLOT 1800          /* a packet plus libsrtp's longest trailer (SRTP_MAX_TRAILER_LEN) */
#define TRAILER 144 /* SRTP_MAX_TRAILER_LEN: the longest tag and MKI libsrtp 2 appends */

typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

static unsigned char slots[MAX_SEGMENTS][SLOT] __attribute__((aligned(16))); /* libsrtp reads words */
static int slot_len[MAX_SEGMENTS];
static int gso_enabled = 1; /* set_gso: off for a benchmark's one-datagram-per-call baseline */

/* How many datagrams from `lengths[start]` on one GSO send can carry: every one as long
 * as the run's first, except the last, which may be shorter; at most MAX_SEGMENTS and
 * MAX_RUN_BYTES. (A video frame's packets are even parts with a shorter last one, or, for
 * H264, a run one byte shorter: two runs.) */
static int run_length(const int *lengths, int start, int count) {
    int run = 1, size = lengths[start], total = size;
    while (start + run < count && run < MAX_SEGMENTS) {
        int next = lengths[start + run];
        if (next > size || total + next > MAX_RUN_BYTES) break;
        run++;
        total += next;
        if (next < size) break; /* a shorter datagram ends the run */
    }
    return run;
}

typedef struct {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    srtp_protect_fn protect;
    void *srtp;
    int gso; /* 0 once the kernel refused a UDP_SEGMENT send to this peer */
} Target;

/* Send slots [0, count) to the socket; returns how many it took, sets *error when it
 * stopped short (EAGAIN, or an error the caller reports through asyncio).
 *
 * A run the kernel refuses to segment is sent again one datagram per call, and so is
 * everything after it to this peer: no UDP_SEGMENT in this kernel (ENOPROTOOPT,
 * EOPNOTSUPP), a device without checksum offload or an IPsec route (EIO), or a route
 * whose MTU is below a segment (EMSGSIZE, EINVAL: a tunnel, a VPN), where one datagram
 * at a time is fragmented and delivered. EMSGSIZE used to go to asyncio with the rest of
 * the frame, every frame. */
static int send_slots(Target *target, int count, int *error) {
    const struct sockaddr *addr = (const struct sockaddr *)&target->addr;
    int sent = 0;
    while (sent < count) {
        int run = gso_enabled && target->gso ? run_length(slot_len, sent, count) : 1;
        int size = slot_len[sent];
        ssize_t done;
        if (run == 1) {
            done = sendto(target->fd, slots[sent], (size_t)size, 0, addr, target->addr_len);
        } else {
            struct iovec iov[MAX_SEGMENTS];
            for (int i = 0; i < run; i++) {
                iov[i].iov_base = slots[sent + i];
                iov[i].iov_len = (size_t)slot_len[sent + i];
            }
            char control[CMSG_SPACE(sizeof(uint16_t))];
            memset(control, 0, sizeof(control));
            struct msghdr msg;
            memset(&msg, 0, sizeof(msg));
            msg.msg_name = (void *)addr;
            msg.msg_namelen = target->addr_len;
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)run;
            msg.msg_control = control;
            msg.msg_controllen = sizeof(control);
            struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
            cmsg->cmsg_level = SOL_UDP;
            cmsg->cmsg_type = UDP_SEGMENT;
            cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment = (uint16_t)size;
            memcpy(CMSG_DATA(cmsg), &segment, sizeof(segment));
            done = sendmsg(target->fd, &msg, 0);
            if (done < 0 && (errno == EIO || errno == EINVAL || errno == EMSGSIZE ||
                             errno == ENOPROTOOPT || errno == EOPNOTSUPP)) {
                target->gso = 0; /* this kernel or route cannot: one datagram per call */
                continue;
            }
        }
        if (done < 0) {
            if (errno == EINTR) continue;
            *error = errno;
            return sent;
        }
        sent += run;
    }
    return sent;
}

/* Slots [from, count) appended to *into, a list of bytes made on the first (what Python
 * sends through asyncio); -1 with an exception. */
static int unsent_slots(int from, int count, PyObject **into) {
    if (from < count && *into == NULL && (*into = PyList_New(0)) == NULL) return -1;
    for (int i = from; i < count; i++) {
        PyObject *datagram = PyBytes_FromStringAndSize((const char *)slots[i], slot_len[i]);
        if (datagram == NULL || PyList_Append(*into, datagram) < 0) {
            Py_XDECREF(datagram);
            return -1;
        }
        Py_DECREF(datagram);
    }
    return 0;
}

/* Protect slot i in place; -1 with a Python exception on a libsrtp error. */
static int protect_slot(const Target *target, int i) {
    int length = slot_len[i];
    int status = target->protect(target->srtp, slots[i], &length);
    if (status != 0) {
        PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (status %d)", status);
        return -1;
    }
    slot_len[i] = length;
    return 0;
}

/* Send the protected slots [0, count), collecting what the socket did not take. */
static int flush(Target *target, int count, PyObject **unsent, int *error) {
    int sent = 0;
    if (target->fd >= 0 && *error == 0) sent = send_slots(target, count, error);
    return unsent_slots(sent, count, unsent);
}

/* Protect the slot just filled; send the slots once all MAX_SEGMENTS are filled. */
static int take_slot(Target *target, int *filled, PyObject **unsent, int *error) {
    if (protect_slot(target, *filled) < 0) return -1;
    if (++*filled < MAX_SEGMENTS) return 0;
    *filled = 0;
    return flush(target, MAX_SEGMENTS, unsent, error);
}

/* Every item of `items` bytes of at most `limit` bytes, checked before anything is kept or
 * sent: bad input changes nothing. */
static int check_lengths(PyObject *items, Py_ssize_t limit) {
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(items); k++) {
        PyObject *item = PyList_GET_ITEM(items, k);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "payloads and packets must be bytes");
            return -1;
        }
        if (PyBytes_GET_SIZE(item) > limit) {
            PyErr_SetString(PyExc_ValueError, "packet is too long");
            return -1;
        }
    }
    return 0;
}

/* Packet k of a frame: first byte, payload type (| 0x80 on the last: the marker), sequence
 * number, then `tail` (timestamp, SSRC, header extensions, shared by the frame's packets),
 * then payloads[k]; each kept unprotected in history[seq % len(history)], protected and
 * sent. Returns the next sequence number, -1 with an exception. */
static long write_frame(Target *target, long first, long payload_type, long seq,
                        const unsigned char *tail, Py_ssize_t tail_len, PyObject *payloads,
                        PyObject *history, PyObject **unsent) {
    Py_ssize_t count = PyList_GET_SIZE(payloads);
    Py_ssize_t history_len = PyList_GET_SIZE(history);
    if (history_len < 1) {
        PyErr_SetString(PyExc_ValueError, "the history is empty");
        return -1;
    }
    if (check_lengths(payloads, SLOT - TRAILER - 4 - tail_len) < 0) return -1;
    int error = 0, filled = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *payload = PyList_GET_ITEM(payloads, k);
        Py_ssize_t payload_len = PyBytes_GET_SIZE(payload);
        Py_ssize_t length = 4 + tail_len + payload_len;
        PyObject *packet = PyBytes_FromStringAndSize(NULL, length);
        if (packet == NULL) return -1;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(packet);
        out[0] = (unsigned char)first;
        out[1] = (unsigned char)((payload_type & 0x7F) | (k == count - 1 ? 0x80 : 0));
        out[2] = (unsigned char)((seq >> 8) & 0xFF);
        out[3] = (unsigned char)(seq & 0xFF);
        memcpy(out + 4, tail, (size_t)tail_len);
        memcpy(out + 4 + tail_len, PyBytes_AS_STRING(payload), (size_t)payload_len);
        memcpy(slots[filled], out, (size_t)length);
        slot_len[filled] = (int)length;
        PyList_SetItem(history, seq % history_len, packet); /* steals; drops the old one */
        seq = (seq + 1) & 0xFFFF;
        if (take_slot(target, &filled, unsent, &error) < 0) return -1;
    }
    if (filled && flush(target, filled, unsent, &error) < 0) return -1;
    return seq;
}

/* Finished RTP packets (resends, padding): protected and sent in order. */
static int write_packets(Target *target, PyObject *packets, PyObject **unsent) {
    if (check_lengths(packets, SLOT - TRAILER) < 0) return -1;
    int error = 0, filled = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(packets); k++) {
        PyObject *packet = PyList_GET_ITEM(packets, k);
        Py_ssize_t length = PyBytes_GET_SIZE(packet);
        memcpy(slots[filled], PyBytes_AS_STRING(packet), (size_t)length);
        slot_len[filled] = (int)length;
        if (take_slot(target, &filled, unsent, &error) < 0) return -1;
    }
    if (filled && flush(target, filled, unsent, &error) < 0) return -1;
    return 0;
}

/* ---- Wire: where one subscriber's RTP goes ----------------------------------------
 *
 * Wire(session, srtp, protect, sock, addr, sendto, remote): the SRTP session (kept alive;
 * `srtp` is its srtp_t's address, `protect` libsrtp's srtp_protect's), the socket to write
 * directly (or None: everything through `sendto`), the peer's address as the kernel
 * takes it, and asyncio's `sendto(datagram, remote)` for what the socket does not take.
 * The socket's descriptor is read before each send (sock.fileno()), never remembered: a
 * closed socket's number is reused by the next socket opened.
 *
 * `watch(dtls, connected, connection, pair, udp, max_backlog)` makes every send first
 * check that this wire is still where the transport sends (what RtpLink.wire checks in
 * Python): the DTLS transport's `_state` is `connected` and its `_tx_srtp` this session,
 * the ICE connection's `_nominated[1]` is `pair` and `pair.protocol.transport` is `udp`,
 * and `udp.get_write_buffer_size()` (the bytes asyncio holds for it; not read when
 * `max_backlog` is None: a transport that holds none) is at most `max_backlog` (above 0:
 * everything goes through asyncio, in order). A send on a wire no longer current sends
 * nothing and returns -1 (frame) or False (packets).
 *
 * `count_to(sender, dtls)` makes `frame` account what it sent where aiortc would have:
 * the RTCRtpSender's report counters and the DTLS transport's. */

typedef struct {
    PyObject_HEAD
    Target target;
    PyObject *session, *sock, *sendto, *remote;
    PyObject *dtls, *connected, *connection, *pair, *udp; /* watch: NULL until set */
    long max_backlog; /* -1: `udp` holds no backlog to read */
    PyObject *sender, *counted_dtls; /* count_to: NULL until set */
} WireObject;

static PyObject *ONE; /* the key 1 (ICE component 1) */
static PyObject *S_state, *S_tx_srtp, *S_nominated, *S_protocol, *S_transport,
    *S_get_write_buffer_size, *S_fileno, *S_packet_count, *S_octet_count, *S_rtp_timestamp,
    *S_ntp_timestamp, *S_tx_packets, *S_tx_bytes;

static int wire_traverse(WireObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->session);
    Py_VISIT(self->sock);
    Py_VISIT(self->sendto);
    Py_VISIT(self->remote);
    Py_VISIT(self->dtls);
    Py_VISIT(self->connected);
    Py_VISIT(self->connection);
    Py_VISIT(self->pair);
    Py_VISIT(self->udp);
    Py_VISIT(self->sender);
    Py_VISIT(self->counted_dtls);
    return 0;
}

static int wire_clear(WireObject *self) {
    Py_CLEAR(self->session);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->sendto);
    Py_CLEAR(self->remote);
    Py_CLEAR(self->dtls);
    Py_CLEAR(self->connected);
    Py_CLEAR(self->connection);
    Py_CLEAR(self->pair);
    Py_CLEAR(self->udp);
    Py_CLEAR(self->sender);
    Py_CLEAR(self->counted_dtls);
    return 0;
}

static void wire_dealloc(WireObject *self) {
    PyObject_GC_UnTrack(self);
    wire_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int wire_init(WireObject *self, PyObject *args, PyObject *kwds) {
    PyObject *session, *srtp, *protect, *sock, *addr, *sendto, *remote;
    static char *names[] = {"session", "srtp", "protect", "sock", "addr", "sendto", "remote", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO", names, &session, &srtp, &protect,
                                     &sock, &addr, &sendto, &remote))
        return -1;
    if (!PyBytes_Check(addr) || PyBytes_GET_SIZE(addr) > (Py_ssize_t)sizeof(self->target.addr)) {
        PyErr_SetString(PyExc_TypeError, "the address must be bytes (from sockaddr())");
        return -1;
    }
    if (!PyCallable_Check(sendto)) {
        PyErr_SetString(PyExc_TypeError, "sendto must be callable");
        return -1;
    }
    void *srtp_ptr = PyLong_AsVoidPtr(srtp);
    void *protect_ptr = PyLong_AsVoidPtr(protect);
    if (PyErr_Occurred()) return -1;
    if (srtp_ptr == NULL || protect_ptr == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return -1;
    }
    wire_clear(self);
    self->target.fd = -1;
    self->target.gso = 1;
    memcpy(&self->target.addr, PyBytes_AS_STRING(addr), (size_t)PyBytes_GET_SIZE(addr));
    self->target.addr_len = (socklen_t)PyBytes_GET_SIZE(addr);
    self->target.srtp = srtp_ptr;
    self->target.protect = (srtp_protect_fn)protect_ptr;
    self->session = Py_NewRef(session);
    self->sock = Py_NewRef(sock);
    self->sendto = Py_NewRef(sendto);
    self->remote = Py_NewRef(remote);
    return 0;
}

/* The socket's descriptor now (-1: closed, or no socket to write). */
static int descriptor(WireObject *self, int *fd) {
    *fd = -1;
    if (self->sock == Py_None) return 0;
    PyObject *number = PyObject_CallMethodNoArgs(self->sock, S_fileno);
    if (number == NULL) return -1;
    long value = PyLong_AsLong(number);
    Py_DECREF(number);
    if (value == -1 && PyErr_Occurred()) return -1;
    *fd = (int)value;
    return 0;
}

/* Whether `obj.name is expected` (-1 with an exception). */
static int attr_is(PyObject *obj, PyObject *name, PyObject *expected) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    int same = value == expected;
    Py_DECREF(value);
    return same;
}

/* Still where the transport sends? 1 yes (target.fd set for this send), 0 no, -1 error. */
static int wire_check(WireObject *self) {
    long queued = 0;
    if (self->session == NULL) { /* never made (no __init__), or cleared by the GC */
        PyErr_SetString(PyExc_ValueError, "this wire was never made or has been cleared");
        return -1;
    }
    if (self->dtls != NULL) {
        int same = attr_is(self->dtls, S_state, self->connected);
        if (same > 0) same = attr_is(self->dtls, S_tx_srtp, self->session);
        if (same <= 0) return same;
        PyObject *nominated = PyObject_GetAttr(self->connection, S_nominated);
        if (nominated == NULL) return -1;
        if (!PyDict_Check(nominated)) {
            Py_DECREF(nominated);
            PyErr_SetString(PyExc_TypeError, "the ICE connection's _nominated is not a dict");
            return -1;
        }
        PyObject *pair = PyDict_GetItemWithError(nominated, ONE); /* borrowed */
        same = pair == self->pair;
        Py_DECREF(nominated);
        if (!same) return PyErr_Occurred() ? -1 : 0;
        PyObject *protocol = PyObject_GetAttr(self->pair, S_protocol);
        if (protocol == NULL) return -1;
        same = attr_is(protocol, S_transport, self->udp);
        Py_DECREF(protocol);
        if (same <= 0) return same;
        if (self->max_backlog >= 0) {
            PyObject *size = PyObject_CallMethodNoArgs(self->udp, S_get_write_buffer_size);
            if (size == NULL) return -1;
            queued = PyLong_AsLong(size);
            Py_DECREF(size);
            if (queued == -1 && PyErr_Occurred()) return -1;
            if (queued > self->max_backlog) return 0;
        }
    }
    if (descriptor(self, &self->target.fd) < 0) return -1;
    if (queued) self->target.fd = -1; /* asyncio holds datagrams: keep the order */
    return 1;
}

/* Hand what the socket did not take (a list, or NULL: nothing) to asyncio, in order. */
static int hand_over(WireObject *self, PyObject *unsent) {
    if (unsent == NULL) return 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(unsent); i++) {
        PyObject *done = PyObject_CallFunctionObjArgs(self->sendto, PyList_GET_ITEM(unsent, i),
                                                      self->remote, NULL);
        if (done == NULL) return -1;
        Py_DECREF(done);
    }
    return 0;
}

/* obj.name += amount */
static int add_to(PyObject *obj, PyObject *name, long long amount) {
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    PyObject *delta = PyLong_FromLongLong(amount);
    PyObject *sum = delta == NULL ? NULL : PyNumber_Add(value, delta);
    Py_DECREF(value);
    Py_XDECREF(delta);
    if (sum == NULL) return -1;
    int result = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return result;
}

static PyObject *wire_watch(WireObject *self, PyObject *args) {
    PyObject *dtls, *connected, *connection, *pair, *udp, *limit;
    if (!PyArg_ParseTuple(args, "OOOOOO", &dtls, &connected, &connection, &pair, &udp, &limit))
        return NULL;
    long max_backlog = -1;
    if (limit != Py_None) {
        max_backlog = PyLong_AsLong(limit);
        if (max_backlog == -1 && PyErr_Occurred()) return NULL;
        if (max_backlog < 0) {
            PyErr_SetString(PyExc_ValueError, "max_backlog must be at least 0, or None");
            return NULL;
        }
    }
    Py_XSETREF(self->dtls, Py_NewRef(dtls));
    Py_XSETREF(self->connected, Py_NewRef(connected));
    Py_XSETREF(self->connection, Py_NewRef(connection));
    Py_XSETREF(self->pair, Py_NewRef(pair));
    Py_XSETREF(self->udp, Py_NewRef(udp));
    self->max_backlog = max_backlog;
    Py_RETURN_NONE;
}

static PyObject *wire_count_to(WireObject *self, PyObject *args) {
    PyObject *sender, *dtls;
    if (!PyArg_ParseTuple(args, "OO", &sender, &dtls)) return NULL;
    Py_XSETREF(self->sender, Py_NewRef(sender));
    Py_XSETREF(self->counted_dtls, Py_NewRef(dtls));
    Py_RETURN_NONE;
}

static PyObject *wire_current(WireObject *self, PyObject *unused) {
    int ok = wire_check(self);
    if (ok < 0) return NULL;
    return PyBool_FromLong(ok);
}

/* One frame's packets written, kept, protected and sent on this wire (write_frame), and,
 * with `timestamp` and `ntp` (not NULL) and a sender to count to, counted for aiortc's
 * reports. Returns the next sequence number, -1 if the wire is no longer current (nothing
 * sent), -2 with an exception. */
static long wire_send(WireObject *self, long first, long payload_type, long seq,
                      const unsigned char *tail, Py_ssize_t tail_len, PyObject *payloads,
                      PyObject *history, long long payload_octets, PyObject *timestamp,
                      PyObject *ntp) {
    int ok = wire_check(self);
    if (ok <= 0) return ok < 0 ? -2 : -1;
    PyObject *unsent = NULL;
    Py_ssize_t count = PyList_GET_SIZE(payloads);
    long next = write_frame(&self->target, first, payload_type, seq, tail, tail_len, payloads,
                            history, &unsent);
    int failed = next < 0 || hand_over(self, unsent) < 0;
    Py_XDECREF(unsent);
    if (failed) return -2;
    if (timestamp != NULL && self->sender != NULL && count) {
        long long octets = payload_octets + count * (4 + tail_len);
        if (add_to(self->sender, S_packet_count, count) < 0 ||
            add_to(self->sender, S_octet_count, payload_octets) < 0 ||
            PyObject_SetAttr(self->sender, S_rtp_timestamp, timestamp) < 0 ||
            PyObject_SetAttr(self->sender, S_ntp_timestamp, ntp) < 0 ||
            add_to(self->counted_dtls, S_tx_packets, count) < 0 ||
            add_to(self->counted_dtls, S_tx_bytes, octets) < 0)
            return -2;
    }
    return next;
}

/* frame(first, payload_type, seq, tail, payloads, history[, payload_octets, timestamp,
 * ntp]) -> the next sequence number, or -1 (nothing sent: no longer current). */
static PyObject *wire_frame(WireObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 && nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "frame takes 6 or 9 arguments");
        return NULL;
    }
    long first = PyLong_AsLong(args[0]);
    long payload_type = PyLong_AsLong(args[1]);
    long seq = PyLong_AsLong(args[2]);
    long long payload_octets = nargs == 9 ? PyLong_AsLongLong(args[6]) : 0;
    if (PyErr_Occurred()) return NULL;
    PyObject *tail = args[3], *payloads = args[4], *history = args[5];
    if (!PyBytes_Check(tail) || !PyList_Check(payloads) || !PyList_Check(history) ||
        PyList_GET_SIZE(history) < 1) {
        PyErr_SetString(PyExc_TypeError, "tail: bytes, payloads and history: lists");
        return NULL;
    }
    long next = wire_send(self, first, payload_type, seq,
                          (const unsigned char *)PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail),
                          payloads, history, payload_octets, nargs == 9 ? args[7] : NULL,
                          nargs == 9 ? args[8] : NULL);
    return next == -2 ? NULL : PyLong_FromLong(next);
}

/* packets(packets) -> True, or False (nothing sent: no longer current) */
static PyObject *wire_packets(WireObject *self, PyObject *packets) {
    if (!PyList_Check(packets)) {
        PyErr_SetString(PyExc_TypeError, "packets must be a list");
        return NULL;
    }
    int ok = wire_check(self);
    if (ok <= 0) return ok < 0 ? NULL : Py_NewRef(Py_False);
    PyObject *unsent = NULL;
    int failed = write_packets(&self->target, packets, &unsent) < 0 || hand_over(self, unsent) < 0;
    Py_XDECREF(unsent);
    if (failed) return NULL;
    Py_RETURN_TRUE;
}

static PyObject *wire_fd(WireObject *self, void *closure) {
    return PyLong_FromLong(self->target.fd);
}

static PyObject *wire_gso(WireObject *self, void *closure) {
    return PyBool_FromLong(self->target.gso);
}

static PyMethodDef wire_methods[] = {
    {"watch", (PyCFunction)wire_watch, METH_VARARGS,
     "Check before each send that this is still where the transport sends."},
    {"count_to", (PyCFunction)wire_count_to, METH_VARARGS,
     "Account frames sent in the RTP sender's and the DTLS transport's counters."},
    {"current", (PyCFunction)wire_current, METH_NOARGS,
     "Whether it is still where the transport sends."},
    {"frame", (PyCFunction)(void (*)(void))wire_frame, METH_FASTCALL,
     "Write, keep, protect and send one frame's RTP packets."},
    {"packets", (PyCFunction)wire_packets, METH_O, "Protect and send finished RTP packets."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef wire_getset[] = {
    {"fd", (getter)wire_fd, NULL, "The descriptor the last send used (-1: through asyncio).",
     NULL},
    {"gso", (getter)wire_gso, NULL,
     "Whether runs to this peer still go out with UDP_SEGMENT (the kernel refused none).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WireType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_send.Wire",
    .tp_basicsize = sizeof(WireObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Where one subscriber's RTP goes (see the comment above WireObject).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)wire_init,
    .tp_dealloc = (destructor)wire_dealloc,
    .tp_traverse = (traverseproc)wire_traverse,
    .tp_clear = (inquiry)wire_clear,
    .tp_methods = wire_methods,
    .tp_getset = wire_getset,
};

/* ---- Stream: one forwarded track's RTP stream to one subscriber ---------------------
 *
 * What `RtpOutput` (rtp_output.py) keeps per frame, kept here so that a frame goes to
 * each subscriber without Python: the SSRC, payload type, next sequence number and
 * timestamp origin, the header extension block's fixed parts (RFC 8285, one-byte form:
 * without and with the audio level element; abs-send-time's 3 bytes and the level come
 * from the frame), the NACK history (a list), the wire it last sent on, what it counts
 * (packets, frames, the resend budget, bytes for the subscriber's resend room) and the
 * last frame sent (its RTP timestamp and NTP time).
 *
 * Stream(history, ssrc, payload_type, seq, origin, block, leveled_block, level_id,
 * budget_cap): `block` and `leveled_block` are (start, timed, padding): the block's
 * bytes before abs-send-time's value, whether that value follows, and the padding that
 * ends the block (after the level element, in the leveled one). level_id 0: no level.
 *
 * send(frame) -> True (sent), or False (nothing sent: no wire, or the wire is no longer
 * where the transport sends; Python makes another and sets `wire`). `frame` is a
 * `Packetized`. fan_out(streams, frame) sends one frame to many streams and returns the
 * indices of those that sent nothing. */

#define BLOCK_MAX 32 /* 4 (0xBEDE, length) + mid (1 + 16) + abs-send-time's header, rounded */

#define TAIL_MAX (8 + BLOCK_MAX + 3 + 2 + 3) /* timestamp, SSRC, the longest block */

typedef struct {
    unsigned char start[BLOCK_MAX];
    int start_len, timed, padding;
} Block;

typedef struct {
    PyObject_HEAD
    WireObject *wire; /* NULL: none yet */
    PyObject *history, *room, *last_ntp; /* room, last_ntp: NULL until set */
    uint32_t ssrc, origin, last_timestamp;
    long payload_type, seq, budget, budget_cap;
    Block block, leveled;
    int level_id;
    long long packets, frames;
} StreamObject;

static PyTypeObject StreamType;
static PyObject *S_payloads, *S_timestamp, *S_ntp, *S_audio_level, *S_octets,
    *S_abs_send_time, *S_sent;

/* A frame's parts, read once for every stream it goes to. */
typedef struct {
    PyObject *payloads, *ntp; /* new references */
    uint32_t timestamp;
    int level; /* -1: none */
    long long octets;
    unsigned char send_time[3];
} Frame;

static void frame_release(Frame *frame) {
    Py_CLEAR(frame->payloads);
    Py_CLEAR(frame->ntp);
}

static int frame_read(PyObject *obj, Frame *frame) {
    memset(frame, 0, sizeof(*frame));
    PyObject *timestamp = NULL, *level = NULL, *octets = NULL, *send_time = NULL;
    /* each read only while the ones before succeeded (no call with an exception set) */
    int ok = (frame->payloads = PyObject_GetAttr(obj, S_payloads)) != NULL &&
             (frame->ntp = PyObject_GetAttr(obj, S_ntp)) != NULL &&
             (timestamp = PyObject_GetAttr(obj, S_timestamp)) != NULL &&
             (level = PyObject_GetAttr(obj, S_audio_level)) != NULL &&
             (octets = PyObject_GetAttr(obj, S_octets)) != NULL &&
             (send_time = PyObject_GetAttr(obj, S_abs_send_time)) != NULL;
    if (!ok && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "not a Packetized frame");
    }
    if (ok && (!PyList_Check(frame->payloads) || !PyLong_Check(frame->ntp) ||
               !PyBytes_Check(send_time) || PyBytes_GET_SIZE(send_time) != 3)) {
        PyErr_SetString(PyExc_TypeError, "not a Packetized frame");
        ok = 0;
    }
    if (ok) {
        frame->timestamp = (uint32_t)(PyLong_AsUnsignedLongLongMask(timestamp) & 0xFFFFFFFF);
        frame->octets = PyLong_AsLongLong(octets);
        frame->level = level == Py_None ? -1 : (int)(PyLong_AsLong(level) & 0xFF);
        memcpy(frame->send_time, PyBytes_AS_STRING(send_time), 3);
        ok = !PyErr_Occurred();
    }
    Py_XDECREF(timestamp);
    Py_XDECREF(level);
    Py_XDECREF(octets);
    Py_XDECREF(send_time);
    if (!ok) frame_release(frame);
    return ok ? 0 : -1;
}

/* The packets' shared tail (timestamp, SSRC, extension block) into `tail`; its length. */
static Py_ssize_t stream_tail(StreamObject *self, const Frame *frame, uint32_t timestamp,
                              unsigned char *tail) {
    tail[0] = (unsigned char)(timestamp >> 24);
    tail[1] = (unsigned char)(timestamp >> 16);
    tail[2] = (unsigned char)(timestamp >> 8);
    tail[3] = (unsigned char)timestamp;
    tail[4] = (unsigned char)(self->ssrc >> 24);
    tail[5] = (unsigned char)(self->ssrc >> 16);
    tail[6] = (unsigned char)(self->ssrc >> 8);
    tail[7] = (unsigned char)self->ssrc;
    int leveled = frame->level >= 0 && self->level_id > 0;
    const Block *block = leveled ? &self->leveled : &self->block;
    if (!leveled && block->start_len == 0) return 8;
    unsigned char *out = tail + 8;
    memcpy(out, block->start, (size_t)block->start_len);
    out += block->start_len;
    if (block->timed) {
        memcpy(out, frame->send_time, 3);
        out += 3;
    }
    if (leveled) {
        *out++ = (unsigned char)(self->level_id << 4);
        *out++ = (unsigned char)frame->level;
    }
    memset(out, 0, (size_t)block->padding);
    out += block->padding;
    return out - tail;
}

/* 1 sent, 0 nothing sent (no current wire), -1 with an exception. */
static int stream_send(StreamObject *self, const Frame *frame) {
    if (self->wire == NULL) return 0;
    if (PyList_GET_SIZE(self->history) < 1) {
        PyErr_SetString(PyExc_ValueError, "the history is empty");
        return -1;
    }
    unsigned char tail[TAIL_MAX];
    uint32_t timestamp = self->origin + frame->timestamp;
    Py_ssize_t tail_len = stream_tail(self, frame, timestamp, tail);
    Py_ssize_t count = PyList_GET_SIZE(frame->payloads);
    PyObject *stamp = PyLong_FromUnsignedLong(timestamp);
    if (stamp == NULL) return -1;
    WireObject *wire = (WireObject *)Py_NewRef(self->wire); /* Python runs in wire_send */
    PyObject *history = Py_NewRef(self->history);
    long next = wire_send(wire, tail_len > 8 ? 0x90 : 0x80, self->payload_type, self->seq,
                          tail, tail_len, frame->payloads, history, frame->octets, stamp,
                          frame->ntp);
    Py_DECREF(wire);
    Py_DECREF(history);
    Py_DECREF(stamp);
    if (next < 0) return next == -1 ? 0 : -1;
    self->seq = next;
    self->frames++;
    if (!count) return 1;
    self->last_timestamp = timestamp;
    Py_XSETREF(self->last_ntp, Py_NewRef(frame->ntp));
    if (self->room != NULL && self->room != Py_None &&
        add_to(self->room, S_sent, frame->octets + count * (4 + tail_len)) < 0)
        return -1;
    self->packets += count;
    self->budget = self->budget + count < self->budget_cap ? self->budget + count : self->budget_cap;
    return 1;
}

static int stream_traverse(StreamObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->wire);
    Py_VISIT(self->history);
    Py_VISIT(self->room);
    Py_VISIT(self->last_ntp);
    return 0;
}

static int stream_clear(StreamObject *self) {
    Py_CLEAR(self->wire);
    Py_CLEAR(self->history);
    Py_CLEAR(self->room);
    Py_CLEAR(self->last_ntp);
    return 0;
}

static void stream_dealloc(StreamObject *self) {
    PyObject_GC_UnTrack(self);
    stream_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int block_read(PyObject *parts, Block *block, int leveled) {
    PyObject *start, *timed, *padding;
    if (!PyTuple_Check(parts) || !PyArg_ParseTuple(parts, "SOS", &start, &timed, &padding)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a block is (bytes, bool, bytes)");
        return -1;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(start), pad = PyBytes_GET_SIZE(padding);
    int is_timed = PyObject_IsTrue(timed);
    if (is_timed < 0) return -1;
    Py_ssize_t total = length + (is_timed ? 3 : 0) + (leveled ? 2 : 0) + pad;
    if (length > BLOCK_MAX || pad > 3 || (length && total % 4 != 0) || (leveled && !length) ||
        (length && (length < 4 || memcmp(PyBytes_AS_STRING(start), "\xbe\xde", 2) != 0))) {
        PyErr_SetString(PyExc_ValueError, "not an extension block's parts");
        return -1;
    }
    memcpy(block->start, PyBytes_AS_STRING(start), (size_t)length);
    block->start_len = (int)length;
    block->timed = is_timed;
    block->padding = (int)pad;
    return 0;
}

static int stream_init(StreamObject *self, PyObject *args, PyObject *kwds) {
    PyObject *history, *block, *leveled;
    unsigned long ssrc, origin;
    long payload_type, seq, budget_cap;
    int level_id;
    static char *names[] = {"history",       "ssrc",     "payload_type", "seq", "origin",
                            "block",         "leveled_block", "level_id", "budget_cap", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!kllkOOil", names, &PyList_Type, &history,
                                     &ssrc, &payload_type, &seq, &origin, &block, &leveled,
                                     &level_id, &budget_cap))
        return -1;
    if (PyList_GET_SIZE(history) < 1 || ssrc > 0xFFFFFFFFUL || origin > 0xFFFFFFFFUL ||
        payload_type < 0 || payload_type > 127 || seq < 0 || seq > 0xFFFF || level_id < 0 ||
        level_id > 14 || budget_cap < 0) {
        PyErr_SetString(PyExc_ValueError, "a stream's numbers are out of range");
        return -1;
    }
    Block plain, with_level;
    if (block_read(block, &plain, 0) < 0 || block_read(leveled, &with_level, level_id > 0) < 0)
        return -1;
    stream_clear(self);
    self->history = Py_NewRef(history);
    self->ssrc = (uint32_t)ssrc;
    self->origin = (uint32_t)origin;
    self->payload_type = payload_type;
    self->seq = seq;
    self->block = plain;
    self->leveled = with_level;
    self->level_id = level_id;
    self->budget_cap = budget_cap;
    self->budget = 0;
    self->packets = self->frames = 0;
    return 0;
}

static PyObject *stream_send_method(StreamObject *self, PyObject *obj) {
    if (self->history == NULL) {
        PyErr_SetString(PyExc_ValueError, "this stream was never made or has been cleared");
        return NULL;
    }
    Frame frame;
    if (frame_read(obj, &frame) < 0) return NULL;
    int sent = stream_send(self, &frame);
    frame_release(&frame);
    if (sent < 0) return NULL;
    return PyBool_FromLong(sent);
}

static PyObject *stream_get_wire(StreamObject *self, void *closure) {
    return Py_NewRef(self->wire != NULL ? (PyObject *)self->wire : Py_None);
}

static int stream_set_wire(StreamObject *self, PyObject *value, void *closure) {
    if (value != NULL && value != Py_None && !PyObject_TypeCheck(value, &WireType)) {
        PyErr_SetString(PyExc_TypeError, "wire must be a Wire or None");
        return -1;
    }
    WireObject *wire = value == NULL || value == Py_None ? NULL : (WireObject *)Py_NewRef(value);
    Py_XSETREF(self->wire, wire);
    return 0;
}

static PyObject *stream_get_room(StreamObject *self, void *closure) {
    return Py_NewRef(self->room != NULL ? self->room : Py_None);
}

static int stream_set_room(StreamObject *self, PyObject *value, void *closure) {
    Py_XSETREF(self->room, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

/* A number attribute in [0, limit]. */
static int set_number(long *into, PyObject *value, long limit) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete it");
        return -1;
    }
    long number = PyLong_AsLong(value);
    if (number == -1 && PyErr_Occurred()) return -1;
    if (number < 0 || number > limit) {
        PyErr_Format(PyExc_ValueError, "%ld is not in [0, %ld]", number, limit);
        return -1;
    }
    *into = number;
    return 0;
}

static PyObject *stream_get_seq(StreamObject *self, void *closure) {
    return PyLong_FromLong(self->seq);
}

static int stream_set_seq(StreamObject *self, PyObject *value, void *closure) {
    return set_number(&self->seq, value, 0xFFFF);
}

static PyObject *stream_get_origin(StreamObject *self, void *closure) {
    return PyLong_FromUnsignedLong(self->origin);
}

static int stream_set_origin(StreamObject *self, PyObject *value, void *closure) {
    if (value == NULL || !PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "origin must be an int");
        return -1;
    }
    self->origin = (uint32_t)(PyLong_AsUnsignedLongLongMask(value) & 0xFFFFFFFF);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *stream_get_budget(StreamObject *self, void *closure) {
    return PyLong_FromLong(self->budget);
}

static int stream_set_budget(StreamObject *self, PyObject *value, void *closure) {
    return set_number(&self->budget, value, self->budget_cap);
}

static PyObject *stream_get_last(StreamObject *self, void *closure) {
    if (self->last_ntp == NULL) Py_RETURN_NONE;
    return Py_BuildValue("(kO)", (unsigned long)self->last_timestamp, self->last_ntp);
}

static PyObject *stream_get_packets(StreamObject *self, void *closure) {
    return PyLong_FromLongLong(self->packets);
}

static PyObject *stream_get_frames(StreamObject *self, void *closure) {
    return PyLong_FromLongLong(self->frames);
}

static PyMethodDef stream_methods[] = {
    {"send", (PyCFunction)stream_send_method, METH_O,
     "Send one frame (a Packetized); False: nothing sent, no current wire."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"wire", (getter)stream_get_wire, (setter)stream_set_wire, "The wire it sends on.", NULL},
    {"room", (getter)stream_get_room, (setter)stream_set_room,
     "What counts the bytes sent to the subscriber (its `sent`), or None.", NULL},
    {"seq", (getter)stream_get_seq, (setter)stream_set_seq, "The next sequence number.", NULL},
    {"origin", (getter)stream_get_origin, (setter)stream_set_origin,
     "Added to the publication's timestamps (mod 2^32).", NULL},
    {"budget", (getter)stream_get_budget, (setter)stream_set_budget,
     "Resends allowed now (one more per packet sent, up to budget_cap).", NULL},
    {"last", (getter)stream_get_last, NULL,
     "(RTP timestamp, NTP) of the last frame sent, or None.", NULL},
    {"packets", (getter)stream_get_packets, NULL, "Packets sent.", NULL},
    {"frames", (getter)stream_get_frames, NULL, "Frames sent.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "server.media._rtp_send.Stream",
    .tp_basicsize = sizeof(StreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One forwarded track's RTP stream to one subscriber (see the comment above it).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stream_init,
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_traverse = (traverseproc)stream_traverse,
    .tp_clear = (inquiry)stream_clear,
    .tp_methods = stream_methods,
    .tp_getset = stream_getset,
};

/* fan_out(streams, frame) -> the indices of the streams that sent nothing (no current
 * wire). Every stream is checked before the frame goes to any: bad input sends nothing. */
static PyObject *fan_out(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "fan_out(streams: list[Stream], frame)");
        return NULL;
    }
    PyObject *streams = args[0];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(streams); i++) {
        PyObject *item = PyList_GET_ITEM(streams, i);
        if (!PyObject_TypeCheck(item, &StreamType) || ((StreamObject *)item)->history == NULL) {
            PyErr_SetString(PyExc_TypeError, "streams must be made Streams");
            return NULL;
        }
    }
    Frame frame;
    if (frame_read(args[1], &frame) < 0) return NULL;
    if (check_lengths(frame.payloads, SLOT - TRAILER - 4 - TAIL_MAX) < 0) {
        frame_release(&frame);
        return NULL;
    }
    PyObject *unsent = PyList_New(0);
    for (Py_ssize_t i = 0; unsent != NULL && i < PyList_GET_SIZE(streams); i++) {
        PyObject *item = PyList_GET_ITEM(streams, i);
        Py_INCREF(item); /* a sendto that runs Python could change the list */
        int sent = stream_send((StreamObject *)item, &frame);
        Py_DECREF(item);
        if (sent < 0) {
            Py_CLEAR(unsent);
        } else if (!sent) {
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(unsent, index) < 0) Py_CLEAR(unsent);
            Py_XDECREF(index);
        }
    }
    frame_release(&frame);
    return unsent;
}

/* sockaddr(host, port, family) -> the address as the kernel takes it */
static PyObject *sockaddr(PyObject *module, PyObject *args) {
    const char *host;
    int port, family;
    if (!PyArg_ParseTuple(args, "sii", &host, &port, &family)) return NULL;
    if (family == AF_INET) {
        struct sockaddr_in addr;
        memset(&addr, 0, sizeof(addr));
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &addr.sin_addr) == 1)
            return PyBytes_FromStringAndSize((const char *)&addr, sizeof(addr));
    } else if (family == AF_INET6) {
        struct sockaddr_in6 addr;
        memset(&addr, 0, sizeof(addr));
        addr.sin6_family = AF_INET6;
        addr.sin6_port = htons((uint16_t)port);
        struct in_addr v4;
        if (inet_pton(AF_INET6, host, &addr.sin6_addr) == 1)
            return PyBytes_FromStringAndSize((const char *)&addr, sizeof(addr));
        if (inet_pton(AF_INET, host, &v4) == 1) { /* an IPv4 peer on a dual-stack socket */
            addr.sin6_addr.s6_addr[10] = 0xFF;
            addr.sin6_addr.s6_addr[11] = 0xFF;
            memcpy(&addr.sin6_addr.s6_addr[12], &v4, 4);
            return PyBytes_FromStringAndSize((const char *)&addr, sizeof(addr));
        }
    }
    PyErr_Format(PyExc_ValueError, "not a numeric address of family %d: %s", family, host);
    return NULL;
}

static PyObject *gso(PyObject *module, PyObject *unused) {
    return PyBool_FromLong(gso_enabled);
}

/* set_gso(on): whether runs may go out with UDP_SEGMENT (on by default; off for a
 * benchmark's one-datagram-per-call baseline). A wire whose run the kernel refused sends
 * one datagram per call whatever this says (Wire.gso). */
static PyObject *set_gso(PyObject *module, PyObject *on) {
    int value = PyObject_IsTrue(on);
    if (value < 0) return NULL;
    gso_enabled = value;
    Py_RETURN_NONE;
}

/* runs(lengths) -> how send_frame splits datagrams of these lengths into GSO sends */
static PyObject *runs(PyObject *module, PyObject *lengths) {
    int sizes[MAX_SEGMENTS];
    if (!PyList_Check(lengths) || PyList_GET_SIZE(lengths) > MAX_SEGMENTS) {
        PyErr_SetString(PyExc_ValueError, "at most 64 lengths, in a list");
        return NULL;
    }
    int count = (int)PyList_GET_SIZE(lengths);
    for (int i = 0; i < count; i++) {
        sizes[i] = (int)PyLong_AsLong(PyList_GET_ITEM(lengths, i));
        if (PyErr_Occurred()) return NULL;
    }
    PyObject *result = PyList_New(0);
    for (int start = 0; result != NULL && start < count;) {
        int run = run_length(sizes, start, count);
        PyObject *item = PyLong_FromLong(run);
        if (item == NULL || PyList_Append(result, item) < 0) Py_CLEAR(result);
        Py_XDECREF(item);
        start += run;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"sockaddr", sockaddr, METH_VARARGS, "A numeric address as the kernel takes it."},
    {"gso", gso, METH_NOARGS, "Whether runs may go out with UDP_SEGMENT (set_gso)."},
    {"set_gso", set_gso, METH_O, "Turn sending runs with UDP_SEGMENT on or off."},
    {"runs", runs, METH_O, "How datagrams of these lengths are split into GSO sends."},
    {"fan_out", (PyCFunction)(void (*)(void))fan_out, METH_FASTCALL,
     "Send one frame to many streams; the indices of those that sent nothing."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rtp_send",
                                    "The SFU's per-packet send work (see _rtp_send.c).", -1,
                                    methods};

static int intern(PyObject **into, const char *name) {
    *into = PyUnicode_InternFromString(name);
    return *into == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__rtp_send(void) {
    ONE = PyLong_FromLong(1);
    if (ONE == NULL || intern(&S_state, "_state") < 0 || intern(&S_tx_srtp, "_tx_srtp") < 0 ||
        intern(&S_nominated, "_nominated") < 0 || intern(&S_protocol, "protocol") < 0 ||
        intern(&S_transport, "transport") < 0 ||
        intern(&S_get_write_buffer_size, "get_write_buffer_size") < 0 ||
        intern(&S_fileno, "fileno") < 0 ||
        intern(&S_packet_count, "_RTCRtpSender__packet_count") < 0 ||
        intern(&S_octet_count, "_RTCRtpSender__octet_count") < 0 ||
        intern(&S_rtp_timestamp, "_RTCRtpSender__rtp_timestamp") < 0 ||
        intern(&S_ntp_timestamp, "_RTCRtpSender__ntp_timestamp") < 0 ||
        intern(&S_tx_packets, "_RTCDtlsTransport__tx_packets") < 0 ||
        intern(&S_tx_bytes, "_RTCDtlsTransport__tx_bytes") < 0 ||
        intern(&S_payloads, "payloads") < 0 || intern(&S_timestamp, "timestamp") < 0 ||
        intern(&S_ntp, "ntp") < 0 || intern(&S_audio_level, "audio_level") < 0 ||
        intern(&S_octets, "octets") < 0 || intern(&S_abs_send_time, "abs_send_time") < 0 ||
        intern(&S_sent, "sent") < 0)
        return NULL;
    if (PyType_Ready(&WireType) < 0 || PyType_Ready(&StreamType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Wire", (PyObject *)&WireType) < 0 ||
        PyModule_AddObjectRef(m, "Stream", (PyObject *)&StreamType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

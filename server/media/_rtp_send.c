/* The SFU's per-packet send work in C: a subscriber's RTP packets, SRTP, and the
 * system calls. Python reaches it through `Wire` (aiortc_internals/transport.py), from
 * `RtpOutput` (rtp_output.py). Before it, Python's per-packet work (writing each packet,
 * pylibsrtp's protect, `sendto`/`sendmsg`) was most of the SFU's CPU per forwarded
 * stream, 1.7-2.0x Janus's (docs/benchmarks.md).
 *
 * Python keeps every decision (which frame, which layer, which subscriber) and the state
 * (sequence numbers, the NACK history list, the SRTP session): one call here does what
 * per packet was Python's loop: write the packet (shared header parts + payload), keep
 * it in the history, protect it with libsrtp (the `srtp_protect` of pylibsrtp's own
 * libsrtp, reached through its address) and send it, a run of equal-size packets in one
 * `sendmsg` with UDP_SEGMENT (GSO) where the kernel takes it.
 *
 * Whatever the socket does not take (full: EAGAIN; or no socket at hand: fd < 0, e.g.
 * TURN-relayed) is returned protected, in order, for Python to hand to asyncio.
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
static int gso_enabled = 1;

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

/* Send slots [0, count) to the socket; returns how many it took, sets *error when it
 * stopped short (EAGAIN, or an error the caller reports through asyncio). */
static int send_slots(int fd, const struct sockaddr *addr, socklen_t addr_len, int count,
                      int *error) {
    int sent = 0;
    while (sent < count) {
        int run = gso_enabled ? run_length(slot_len, sent, count) : 1;
        int size = slot_len[sent];
        ssize_t done;
        if (run == 1) {
            done = sendto(fd, slots[sent], (size_t)size, 0, addr, addr_len);
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
            msg.msg_namelen = addr_len;
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
            done = sendmsg(fd, &msg, 0);
            if (done < 0 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
                             errno == EOPNOTSUPP)) {
                gso_enabled = 0; /* this kernel or route cannot: one datagram per call */
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

/* Slots [from, count) as a list of bytes (what Python sends through asyncio). */
static PyObject *unsent_slots(int from, int count, PyObject *into) {
    for (int i = from; i < count; i++) {
        PyObject *datagram = PyBytes_FromStringAndSize((const char *)slots[i], slot_len[i]);
        if (datagram == NULL || PyList_Append(into, datagram) < 0) {
            Py_XDECREF(datagram);
            return NULL;
        }
        Py_DECREF(datagram);
    }
    return into;
}

typedef struct {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    srtp_protect_fn protect;
    void *srtp;
} Wire;

static int read_wire(PyObject *const *args, Wire *wire) {
    wire->fd = PyLong_AsLong(args[0]);
    if (wire->fd == -1 && PyErr_Occurred()) return -1;
    if (!PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "the address must be bytes (from sockaddr())");
        return -1;
    }
    Py_ssize_t addr_len = PyBytes_GET_SIZE(args[1]);
    if (addr_len > (Py_ssize_t)sizeof(wire->addr)) {
        PyErr_SetString(PyExc_ValueError, "address too long");
        return -1;
    }
    memcpy(&wire->addr, PyBytes_AS_STRING(args[1]), (size_t)addr_len);
    wire->addr_len = (socklen_t)addr_len;
    wire->protect = (srtp_protect_fn)PyLong_AsVoidPtr(args[2]);
    wire->srtp = PyLong_AsVoidPtr(args[3]);
    if (PyErr_Occurred()) return -1;
    if (wire->protect == NULL || wire->srtp == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return -1;
    }
    return 0;
}

/* Protect slot i in place; -1 with a Python exception on a libsrtp error. */
static int protect_slot(const Wire *wire, int i) {
    int length = slot_len[i];
    int status = wire->protect(wire->srtp, slots[i], &length);
    if (status != 0) {
        PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (status %d)", status);
        return -1;
    }
    slot_len[i] = length;
    return 0;
}

/* Send the protected slots [0, count), collecting what the socket did not take. */
static int flush(const Wire *wire, int count, PyObject *unsent, int *error) {
    int sent = 0;
    if (wire->fd >= 0 && *error == 0)
        sent = send_slots(wire->fd, (const struct sockaddr *)&wire->addr, wire->addr_len, count,
                          error);
    return unsent_slots(sent, count, unsent) == NULL ? -1 : 0;
}

/* Protect the slot just filled; send the slots once all MAX_SEGMENTS are filled. */
static int take_slot(const Wire *wire, int *filled, PyObject *unsent, int *error) {
    if (protect_slot(wire, *filled) < 0) return -1;
    if (++*filled < MAX_SEGMENTS) return 0;
    *filled = 0;
    return flush(wire, MAX_SEGMENTS, unsent, error);
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

/* send_frame(fd, addr, protect, srtp, first, payload_type, seq, tail, payloads, history)
 *   -> (next seq, unsent protected datagrams)
 *
 * Packet k: first byte, payload type (| 0x80 on the last: the marker), sequence number,
 * then `tail` (timestamp, SSRC, header extensions, shared by the frame's packets), then
 * payloads[k]. Each is kept unprotected in history[seq % len(history)]. */
static PyObject *send_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "send_frame takes 10 arguments");
        return NULL;
    }
    Wire wire;
    if (read_wire(args, &wire) < 0) return NULL;
    long first = PyLong_AsLong(args[4]);
    long payload_type = PyLong_AsLong(args[5]);
    long seq = PyLong_AsLong(args[6]);
    if (PyErr_Occurred()) return NULL;
    PyObject *tail = args[7], *payloads = args[8], *history = args[9];
    if (!PyBytes_Check(tail) || !PyList_Check(payloads) || !PyList_Check(history) ||
        PyList_GET_SIZE(history) < 1) {
        PyErr_SetString(PyExc_TypeError, "tail: bytes, payloads and history: lists");
        return NULL;
    }
    Py_ssize_t tail_len = PyBytes_GET_SIZE(tail);
    Py_ssize_t count = PyList_GET_SIZE(payloads);
    Py_ssize_t history_len = PyList_GET_SIZE(history);
    if (check_lengths(payloads, SLOT - TRAILER - 4 - tail_len) < 0) return NULL;
    PyObject *unsent = PyList_New(0);
    if (unsent == NULL) return NULL;
    int error = 0, filled = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *payload = PyList_GET_ITEM(payloads, k);
        Py_ssize_t payload_len = PyBytes_GET_SIZE(payload);
        Py_ssize_t length = 4 + tail_len + payload_len;
        PyObject *packet = PyBytes_FromStringAndSize(NULL, length);
        if (packet == NULL) goto fail;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(packet);
        out[0] = (unsigned char)first;
        out[1] = (unsigned char)((payload_type & 0x7F) | (k == count - 1 ? 0x80 : 0));
        out[2] = (unsigned char)((seq >> 8) & 0xFF);
        out[3] = (unsigned char)(seq & 0xFF);
        memcpy(out + 4, PyBytes_AS_STRING(tail), (size_t)tail_len);
        memcpy(out + 4 + tail_len, PyBytes_AS_STRING(payload), (size_t)payload_len);
        memcpy(slots[filled], out, (size_t)length);
        slot_len[filled] = (int)length;
        PyList_SetItem(history, seq % history_len, packet); /* steals; drops the old one */
        seq = (seq + 1) & 0xFFFF;
        if (take_slot(&wire, &filled, unsent, &error) < 0) goto fail;
    }
    if (filled && flush(&wire, filled, unsent, &error) < 0) goto fail;
    return Py_BuildValue("(lN)", seq, unsent);
fail:
    Py_DECREF(unsent);
    return NULL;
}

/* send_packets(fd, addr, protect, srtp, packets) -> unsent protected datagrams
 * Finished RTP packets (resends, padding): protected and sent in order. */
static PyObject *send_packets(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "send_packets takes 5 arguments");
        return NULL;
    }
    Wire wire;
    if (read_wire(args, &wire) < 0) return NULL;
    PyObject *packets = args[4];
    if (!PyList_Check(packets)) {
        PyErr_SetString(PyExc_TypeError, "packets must be a list");
        return NULL;
    }
    if (check_lengths(packets, SLOT - TRAILER) < 0) return NULL;
    PyObject *unsent = PyList_New(0);
    if (unsent == NULL) return NULL;
    int error = 0, filled = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(packets); k++) {
        PyObject *packet = PyList_GET_ITEM(packets, k);
        Py_ssize_t length = PyBytes_GET_SIZE(packet);
        memcpy(slots[filled], PyBytes_AS_STRING(packet), (size_t)length);
        slot_len[filled] = (int)length;
        if (take_slot(&wire, &filled, unsent, &error) < 0) goto fail;
    }
    if (filled && flush(&wire, filled, unsent, &error) < 0) goto fail;
    return Py_BuildValue("N", unsent);
fail:
    Py_DECREF(unsent);
    return NULL;
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

/* set_gso(on): whether runs go out with UDP_SEGMENT (on by default; off for good after
 * the kernel refuses it, or for a benchmark's one-datagram-per-call baseline) */
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
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "Write, keep, protect and send one frame's RTP packets."},
    {"send_packets", (PyCFunction)(void (*)(void))send_packets, METH_FASTCALL,
     "Protect and send finished RTP packets."},
    {"sockaddr", sockaddr, METH_VARARGS, "A numeric address as the kernel takes it."},
    {"gso", gso, METH_NOARGS, "Whether runs still go out with UDP_SEGMENT."},
    {"set_gso", set_gso, METH_O, "Turn sending runs with UDP_SEGMENT on or off."},
    {"runs", runs, METH_O, "How datagrams of these lengths are split into GSO sends."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rtp_send",
                                    "The SFU's per-packet send work (see rtp_send.py).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__rtp_send(void) { return PyModule_Create(&module); }

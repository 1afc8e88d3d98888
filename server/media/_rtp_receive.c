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
 * `socket_stamp_ns` reads the kernel's receive timestamp of a socket's last datagram
 * (aiortc_internals/arrival.py), in one call instead of Python's `fcntl.ioctl`, a bytes
 * buffer and a struct unpack per packet.
 *
 * Differences from aiortc, on purpose: a header extension whose length does not fit its
 * kind (abs-send-time and transmission offset 3 bytes, audio level 1, transport-wide
 * sequence number 2) drops the packet, where aiortc's `struct.unpack` raises a
 * `struct.error` that its own receive path does not catch. Every packet aiortc parses,
 * this parses the same (tests/media/test_receive_parse.py compares them).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

/* vp8_payload(payload): the VP8 payload after its descriptor (RFC 7741 4.2), as aiortc's
 * `vp8_depayload` returns it; ValueError where its `VpxPayloadDescriptor.parse` raises
 * one (a descriptor cut short). */
static PyObject *vp8_payload(PyObject *module, PyObject *arg) {
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &data, &len) < 0) return NULL;
    const unsigned char *d = (const unsigned char *)data;
    Py_ssize_t pos = 1;
    if (len < 1) goto short_;
    if (d[0] & 0x80) { /* X: extended control bits */
        if (len < pos + 1) goto short_;
        unsigned char x = d[pos++];
        if (x & 0x80) { /* I: picture id, 7 or 15 bits */
            if (len < pos + 1) goto short_;
            if (d[pos] & 0x80) {
                if (len < pos + 2) goto short_;
                pos += 2;
            } else {
                pos += 1;
            }
        }
        if (x & 0x40) { /* L: TL0PICIDX */
            if (len < pos + 1) goto short_;
            pos += 1;
        }
        if (x & 0x30) { /* T or K: one octet */
            if (len < pos + 1) goto short_;
            pos += 1;
        }
    }
    return PyBytes_FromStringAndSize(data + pos, len - pos);
short_:
    PyErr_SetString(PyExc_ValueError, "VP8 payload descriptor is truncated");
    return NULL;
}

/* socket_stamp_ns(fd): the kernel's receive time of the last datagram read from socket
 * `fd` (SIOCGSTAMPNS: wall-clock ns), or -1 where the kernel has none (the first call on a
 * socket, which turns stamping on; a closed socket). */
static PyObject *socket_stamp_ns(PyObject *module, PyObject *arg) {
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) return NULL;
    struct timespec ts;
    if (fd < 0 || fd > INT32_MAX || ioctl((int)fd, SIOCGSTAMPNS, &ts) != 0)
        return PyLong_FromLong(-1);
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}

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
    {"socket_stamp_ns", socket_stamp_ns, METH_O,
     "socket_stamp_ns(fd) -> the kernel's receive time of its last datagram (ns), or -1"},
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
        intern(&S_transport_sequence_number, "transport_sequence_number") < 0)
        return NULL;
    return PyModule_Create(&module);
}

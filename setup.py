"""The compiled parts: the SFU's per-packet send work (server/media/_rtp_send.c) and
receive work (server/media/_rtp_receive.c, and its transport-cc feedback:
server/media/_transport_feedback.c). Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "server.media._rtp_send",
            ["server/media/_rtp_send.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        ),
        Extension(
            "server.media._rtp_receive",
            ["server/media/_rtp_receive.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        ),
        Extension(
            "server.media._transport_feedback",
            ["server/media/_transport_feedback.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        ),
    ]
)

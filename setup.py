"""The one compiled part: the SFU's per-packet send work (server/media/_rtp_send.c).
Everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "server.media._rtp_send",
            ["server/media/_rtp_send.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        )
    ]
)

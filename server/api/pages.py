"""The browser client's pages and static files, with security headers on every response."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server.api.http import Handler

WEB = Path(__file__).resolve().parents[2] / "web"
VENDOR = WEB / "node_modules" / "socket.io-client" / "dist"

# Clean URL → file in web/. Each page loads its scripts and styles from /static/.
PAGES = {
    "/": "index.html",
    "/join": "join.html",
    "/pair": "pair.html",
    "/program": "health.html",
    "/signin": "signin.html",
    "/me": "me.html",
    "/console": "console/index.html",
}

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",  # no inline scripts, no eval
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)


def install(app: web.Application) -> None:
    for path, filename in PAGES.items():
        app.router.add_get(path, _page(WEB / filename))
    app.router.add_static("/static/", WEB, follow_symlinks=False, append_version=False)
    # Browsers ask for it on every page (a console error when it is missing): the app's icon.
    app.router.add_get("/favicon.ico", _page(WEB / "icon-192.png"))
    app.router.add_get(
        "/vendor/socket.io.msgpack.min.js", _page(VENDOR / "socket.io.msgpack.min.js")
    )


def _page(path: Path) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        if not path.is_file():  # noqa: ASYNC240 - a stat of a local file, cheap
            raise web.HTTPNotFound(reason=f"{path.name} is not installed")
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return serve


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith("/socket.io"):
        return response
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self)")
    return response

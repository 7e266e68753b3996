"""The live view's web server: a Starlette app, served by uvicorn in a thread of its own.

    GET /                 the page (index.html)
    GET /static/<name>    live.js and live.css, shipped in this package (no CDN)
    GET /api/state        {"messages": [...]}: what a new page is sent first
    WS  /ws               the stream of messages of :mod:`tinygrad_cnn.live.protocol`

Each page's connection is one coroutine: it sends the page what is new in the
:class:`~tinygrad_cnn.live.state.LiveState`, then waits up to ``interval`` seconds for a
command (select an image, pause, resume), and again. A send that takes more than
``SEND_TIMEOUT`` seconds (a page that does not read) or a malformed command closes the
connection. The event loop never
touches the model: training runs in the main thread, the pictures in the snapshot worker.

Only what is listed above is served; pages are sent a Content-Security-Policy that allows
scripts, styles and connections to this server only (no inline script, no ``eval``). On a
loopback address the ``Host`` header must name the loopback (against DNS rebinding), and a
WebSocket from a page of another origin is refused, so another web site open in the same
browser can neither read the run nor pause it.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.resources
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from tinygrad_cnn.live.protocol import MAX_CLIENT_MESSAGE, parse_client_message
from tinygrad_cnn.live.state import Cursor, LiveState

SEND_TIMEOUT = 10.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
FILES = {"index.html": "text/html; charset=utf-8", "live.js": "text/javascript; charset=utf-8",
         "live.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def read_static() -> dict[str, bytes]:
    """The page's files, from the installed package."""
    folder = importlib.resources.files("tinygrad_cnn.live.static")
    files = {}
    for name in FILES:
        try:
            files[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            raise RuntimeError(f"the live view's page is missing from this installation "
                               f"(tinygrad_cnn/live/static/{name}); reinstall tinygrad_cnn") from None
    return files


def _host_name(netloc: str) -> str | None:
    try:
        return urlsplit(f"//{netloc}").hostname
    except ValueError:
        return None


def create_app(state: LiveState, on_command: Callable[[dict], None], interval: float = 0.25,
               allowed_hosts: tuple[str, ...] | None = LOOPBACK):
    """The ASGI app of the live view. ``on_command`` gets each checked page command, in the
    event loop's thread (it must not block). ``allowed_hosts=None`` accepts any ``Host``."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    files = read_static()

    def respond(body: bytes | str, media_type: str, status: int = 200) -> Response:
        return Response(body, status_code=status, media_type=media_type, headers=SECURITY_HEADERS)

    async def page(request) -> Response:
        return respond(files["index.html"], FILES["index.html"])

    async def static(request) -> Response:
        name = request.path_params["name"]
        if name not in FILES or name == "index.html":
            return respond("not found", "text/plain", 404)
        return respond(files[name], FILES[name])

    async def favicon(request) -> Response:
        return Response(status_code=204, headers=SECURITY_HEADERS)  # no icon, and no 404 in the console

    async def api_state(request) -> Response:
        return respond(state.snapshot_text(), "application/json")

    async def serve_page(websocket: WebSocket) -> int:
        """Send what is new, then listen for a command for up to ``interval`` seconds; again.
        Returns the close code: 1000 when the page left, 1008 after a malformed command."""
        cursor = Cursor()
        while True:
            for text in state.updates(cursor):
                await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT)
            try:  # cancelling a pending receive loses no message (a queue / websockets' recv)
                message = await asyncio.wait_for(websocket.receive(), interval)
            except asyncio.TimeoutError:
                continue
            if message["type"] == "websocket.disconnect":
                return 1000
            try:
                command = parse_client_message(message.get("text"), state.n_images)
            except ValueError:
                return 1008
            on_command(command)

    async def stream(websocket: WebSocket) -> None:
        origin, host = websocket.headers.get("origin"), websocket.headers.get("host", "")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            await websocket.close(code=1008)  # a page of another web site
            return
        await websocket.accept()
        state.connect()
        try:
            code = await serve_page(websocket)
        except Exception:  # noqa: BLE001 - a send that timed out or failed: this page is gone
            code = 1000
        finally:
            state.disconnect()
        try:
            await websocket.close(code=code)
        except Exception:  # noqa: BLE001 - already closed: nothing to tell the page
            pass

    app = Starlette(routes=[Route("/", page), Route("/static/{name}", static), Route("/api/state", api_state),
                            Route("/favicon.ico", favicon),
                            WebSocketRoute("/ws", stream)])

    async def not_found(request, exc) -> Response:
        return PlainTextResponse("not found", status_code=404, headers=SECURITY_HEADERS)

    app.add_exception_handler(404, not_found)
    if allowed_hosts is None:
        return app

    async def checked_host(scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in allowed_hosts:
                if scope["type"] == "http":
                    await PlainTextResponse("unknown host", status_code=400)(scope, receive, send)
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
        await app(scope, receive, send)

    return checked_host


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or an OSError that says what to do."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise OSError(f"live view: cannot listen on host {host!r}: {error.strerror}") from None
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(64)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            message = (f"live view: port {port} on {host} is already in use (another live view or "
                       f"server?); choose another with --port, or --port 0 for any free port")
        else:
            message = f"live view: cannot listen on {host}:{port}: {error.strerror or error}"
        busy = OSError(message)
        busy.errno = error.errno
        raise busy from None
    return sock


class LiveServer:
    """uvicorn serving ``app`` on ``host:port`` (0: any free port) in a daemon thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8765) -> None:
        import uvicorn

        self.host = host
        self.socket = bind_socket(host, port)
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                ws_max_size=4 * MAX_CLIENT_MESSAGE, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="tinygrad_cnn live server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.close()
            raise RuntimeError(f"live view: the server did not start on {self.url}: {self.error!r}")

    def _serve(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.socket]))
        except BaseException as error:  # noqa: BLE001 - SystemExit from uvicorn included: report it
            self.error = error

    @property
    def url(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop serving (pages keep what they show) and wait for the thread, a few seconds at most."""
        self.server.should_exit = True
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        self.socket.close()

"""The web app of ``pbtlab serve``: read-only pages and JSON over the served folders, updates as server-sent events.

    >>> server = start_server([str(getfixture("tmp_path"))])   # doctest: +SKIP
    >>> server.url                                             # doctest: +SKIP
    'http://127.0.0.1:40321'
    >>> server.stop()                                          # doctest: +SKIP

Routes (GET only): ``/`` the list, ``/experiment?id=...`` one run, ``/static/<file>`` the page's own files and
plotly.min.js, ``/api/experiments``, ``/api/snapshot?id=``, ``/api/stream?view=`` (text/event-stream),
``/api/events?id=&kind=&trial=``, ``/api/best?id=&trial=``, ``/api/rungs?id=``. An experiment id is ``<folder number>/<path>``;
anything that resolves outside the served folders answers 404.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pbtlab.errors import ConfigError, describe
from pbtlab.rundir.reader import RunDir
from pbtlab.serve.runs import DEFAULT_STALE_SECONDS, PathRefused, discover, resolve_experiment, summarize
from pbtlab.serve.stack import require_serve_stack

__all__ = [
    "check_roots", "create_app", "DEFAULT_PORT", "LOOPBACK_HOSTS", "RunningServer", "serve_forever",
    "start_server", "STATIC_DIR", "STATIC_FILES",
]

_stack = require_serve_stack()  # the one place the web stack is imported (with an error naming the extra)

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from pbtlab.serve.figures import plotly_js_path, rungs_figure
from pbtlab.serve.live import LiveViews, SnapshotReaders, to_json

DEFAULT_PORT = 8375
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: The only files /static/ serves (name -> media type); no path from a request ever reaches the file system.
STATIC_FILES = {"app.css": "text/css", "list.js": "text/javascript", "experiment.js": "text/javascript",
                "boot.js": "text/javascript", "plotly.min.js": "text/javascript"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _gzip(data: bytes) -> bytes:
    """``data`` gzip-compressed, the same bytes every time (no timestamp in the header)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


@dataclasses.dataclass(frozen=True)
class StaticFile:
    """One of the page's files as sent: its bytes, the same gzip-compressed, and an ETag naming this version."""

    body: bytes
    gzipped: bytes
    etag: str
    version: tuple[int, int]  # (mtime in ns, size) of the file it was read from


class StaticFiles:
    """The page's own files (``STATIC_FILES``), each read and gzip-compressed once per version of the file and shared
    by every visitor: a first visit with an empty browser cache then costs the server no compression (plotly.js
    is 1.2 MB). ``fill()`` does it for every file before anyone asks (the server's start does).

        >>> files = StaticFiles()
        >>> files.get("boot.js").body == open(os.path.join(STATIC_DIR, "boot.js"), "rb").read()
        True
        >>> gzip.decompress(files.get("boot.js").gzipped) == files.get("boot.js").body
        True
    """

    def __init__(self) -> None:
        self._files: dict[str, StaticFile] = {}
        self._lock = threading.Lock()

    @staticmethod
    def path(name: str) -> str:
        return plotly_js_path() if name == "plotly.min.js" else os.path.join(STATIC_DIR, name)

    def get(self, name: str) -> StaticFile:
        """``name``'s current version (read again only when the file changed on disk)."""
        path = self.path(name)
        found = os.stat(path)
        version = (found.st_mtime_ns, found.st_size)
        with self._lock:
            cached = self._files.get(name)
            if cached is not None and cached.version == version:
                return cached
            with open(path, "rb") as handle:
                body = handle.read()
            entry = StaticFile(body, _gzip(body), '"' + hashlib.sha256(body).hexdigest()[:32] + '"', version)
            self._files[name] = entry
            return entry

    def fill(self) -> None:
        for name in STATIC_FILES:
            self.get(name)


def _json(value: Any, status: int = 200) -> Response:
    body = to_json(value)
    return Response(body, status_code=status, media_type="application/json", headers=_SECURITY_HEADERS)


def _refused(message: str) -> Response:
    return _json({"error": message}, 404)


def check_roots(directories: Sequence[str | os.PathLike[str]], allow_missing: bool = False) -> list[str]:
    """The served folders as real paths; a clear error for anything that is not a folder."""
    if isinstance(directories, (str, os.PathLike)) or not isinstance(directories, Sequence):
        raise ConfigError(f"directories must be a list of folders, got {describe(directories)}")
    roots = []
    for directory in directories:
        if not isinstance(directory, (str, os.PathLike)):
            raise ConfigError(f"directories must hold folder paths, got {describe(directory)}")
        path = os.path.realpath(os.fspath(directory))
        if not os.path.isdir(path) and not (allow_missing and not os.path.exists(path)):
            raise ConfigError(f"DIR must be a folder of experiments, got {os.fspath(directory)!r} "
                              f"({'not a folder' if os.path.exists(path) else 'does not exist'})")
        roots.append(path)
    if not roots:
        raise ConfigError("directories must name at least one folder")
    return roots


def create_app(directories: Sequence[str | os.PathLike[str]], *, host: str = "127.0.0.1",
               poll_interval: float = 0.5, stale_after: float = DEFAULT_STALE_SECONDS,
               allow_missing: bool = False, warm: bool = True) -> Any:
    """The Starlette app serving ``directories`` read-only.

    ``poll_interval``: seconds between two looks at a followed run's files (one timer per open page).
    ``stale_after``: a run without experiment_end whose files are older than this is shown as stopped.
    ``warm``: read the most recently changed experiments and build their figures in the background at start,
    so that their first page is as quick as a later one.
    """
    if not isinstance(poll_interval, (int, float)) or isinstance(poll_interval, bool) or not 0.05 <= poll_interval <= 60:
        raise ConfigError(f"poll_interval must be seconds in [0.05, 60], got {describe(poll_interval)}")
    roots = check_roots(directories, allow_missing)
    views = LiveViews()
    readers = SnapshotReaders(stale_after)
    static_files = StaticFiles()
    stopping = threading.Event()  # set when the server shuts down: open streams end at once

    def experiment_dir(request: Request) -> str:
        return resolve_experiment(roots, request.query_params.get("id", ""))

    async def page(request: Request) -> Response:
        name = "index.html" if request.url.path == "/" else "experiment.html"
        return FileResponse(os.path.join(STATIC_DIR, name), media_type="text/html", headers=_SECURITY_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            return _refused("no such file")
        sent = await anyio.to_thread.run_sync(static_files.get, name)  # read and compressed once per version
        headers = dict(_SECURITY_HEADERS)
        headers.update({"Cache-Control": "public, max-age=86400" if name == "plotly.min.js" else "no-cache",
                        "ETag": sent.etag, "Vary": "Accept-Encoding"})
        if sent.etag in [tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)  # the browser's copy is this version
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"  # compressed once (StaticFiles), not per request
            return Response(sent.gzipped, media_type=media_type, headers=headers)
        return Response(sent.body, media_type=media_type, headers=headers)

    async def experiments(request: Request) -> Response:
        def listing() -> list[dict[str, Any]]:
            return [summarize(entry, stale_after) for entry in discover(roots)]

        found = await anyio.to_thread.run_sync(listing)
        return _json({"roots": roots, "experiments": found})

    async def snapshot(request: Request) -> Response:
        try:
            path = experiment_dir(request)
        except PathRefused as refusal:
            return _refused(str(refusal))
        text, view = await anyio.to_thread.run_sync(readers.open_json, path)
        views.add(view)
        return Response(text, media_type="application/json", headers=_SECURITY_HEADERS)

    async def stream(request: Request) -> Response:
        view = views.get(request.query_params.get("view", ""))
        if view is None:
            return _refused("no such view (reload the page)")

        # gzip, flushed after every message so the browser decodes each one as it arrives
        gzip_stream = zlib.compressobj(6, zlib.DEFLATED, 31) if "gzip" in request.headers.get(
            "accept-encoding", "") else None

        def encoded(text: str) -> bytes:
            data = text.encode("utf-8")
            if gzip_stream is None:
                return data
            return gzip_stream.compress(data) + gzip_stream.flush(zlib.Z_SYNC_FLUSH)

        async def messages() -> AsyncIterator[bytes]:
            yield encoded("retry: 5000\n\n")
            quiet_since = time.monotonic()
            while not stopping.is_set():
                delta = await anyio.to_thread.run_sync(view.poll)
                if delta is not None:
                    kind = "reset" if delta.get("reset") else "delta"
                    yield encoded(f"event: {kind}\ndata: {to_json(delta)}\n\n")
                    quiet_since = time.monotonic()
                    if kind == "reset":
                        return
                elif time.monotonic() - quiet_since > 15:
                    yield encoded(": still here\n\n")
                    quiet_since = time.monotonic()
                await anyio.sleep(poll_interval)

        headers = dict(_SECURITY_HEADERS)
        headers.update({"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Vary": "Accept-Encoding"})
        if gzip_stream is not None:
            headers["Content-Encoding"] = "gzip"
        return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)

    async def events(request: Request) -> Response:
        try:
            path = experiment_dir(request)
        except PathRefused as refusal:
            return _refused(str(refusal))
        kinds = [k for k in request.query_params.getlist("kind") if k]
        trial = request.query_params.get("trial") or None
        limit_text = request.query_params.get("limit", "500")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100000:
            return _json({"error": f"limit must be a whole number in [1, 100000], got {limit_text!r}"}, 400)

        def matching() -> dict[str, Any]:
            tail = RunDir(path, strict=False).event_tail()
            found: list[dict[str, Any]] = []
            total = 0
            while True:
                chunk = tail.read()
                for event in chunk.records:
                    if kinds and event.get("event") not in kinds:
                        continue
                    if trial is not None and trial not in (event.get("trial_id"), event.get("donor")):
                        continue
                    total += 1
                    found.append(event)
                    if len(found) > int(limit_text):
                        found.pop(0)
                if not chunk.records and not chunk.damaged:
                    break
            return {"events": found, "matching": total}

        return _json(await anyio.to_thread.run_sync(matching))

    async def best(request: Request) -> Response:
        try:
            path = experiment_dir(request)
        except PathRefused as refusal:
            return _refused(str(refusal))
        trial = request.query_params.get("trial") or None
        return _json(await anyio.to_thread.run_sync(readers.best, path, trial))  # built once per state and trial

    async def population(request: Request) -> Response:
        try:
            path = experiment_dir(request)
        except PathRefused as refusal:
            return _refused(str(refusal))
        return _json(await anyio.to_thread.run_sync(readers.population, path))

    async def rungs(request: Request) -> Response:
        """ASHA's / HyperBand's run rung by rung (asked again by the page at each new rung decision)."""
        try:
            path = experiment_dir(request)
        except PathRefused as refusal:
            return _refused(str(refusal))

        def compute() -> dict[str, Any]:
            run, problems, _ = readers.run(path)
            if run is None:
                return {"error": problems[0]}
            try:
                return {"rungs": rungs_figure(run)}
            except Exception as error:  # noqa: BLE001 - no rung decisions yet, or a damaged log: say so
                return {"error": f"{type(error).__name__}: {error}"}

        return _json(await anyio.to_thread.run_sync(compute))

    async def not_found(request: Request, exc: Exception) -> Response:
        return _refused("not found")

    middleware = [Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)]
    if host in ("127.0.0.1", "localhost"):  # DNS rebinding: a page elsewhere must not reach us by another name
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"]))
    routes = [Route("/", page), Route("/experiment", page), Route("/static/{name}", static),
              Route("/api/experiments", experiments), Route("/api/snapshot", snapshot),
              Route("/api/stream", stream), Route("/api/events", events), Route("/api/best", best),
              Route("/api/population", population), Route("/api/rungs", rungs)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found})
    app.state.stopping = stopping
    app.state.static_files = static_files
    app.state.readers = readers
    app.state.warmed = threading.Event()  # set once the background reading at start is done (or not asked for)
    if warm:
        threading.Thread(target=_warm, args=(readers, static_files, roots, stopping, app.state.warmed),
                         name="pbtlab-serve-warm", daemon=True).start()
    else:
        app.state.warmed.set()
    return app


def _warm(readers: SnapshotReaders, static_files: StaticFiles, roots: list[str], stopping: threading.Event,
          done: threading.Event) -> None:
    """Compress the page's files, then build the snapshots of the most recently changed experiments (what a visitor
    most likely opens first). Warming is an optimization: a failure here is left for a visit to report."""
    try:
        try:
            static_files.fill()
        except Exception:  # noqa: BLE001 - a missing file answers its own request with the error
            pass
        found = sorted(discover(roots), key=lambda entry: _changed(entry.path), reverse=True)
        readers.warm([entry.path for entry in found], stopping)
    except Exception:  # noqa: BLE001 - a visit reports any problem itself
        pass
    finally:
        done.set()


def _changed(path: str) -> float:
    try:
        return os.stat(os.path.join(path, "events.jsonl")).st_mtime
    except OSError:
        return 0.0


# -- running it -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunningServer:
    """A server running in a background thread (tests, notebooks): ``url``, ``stop()``."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.config.app.state.stopping.set()
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    uvicorn = _stack["uvicorn"]

    # Ctrl-C also ends the open event streams, so shutdown does not wait on them
    class Server(uvicorn.Server):  # type: ignore[name-defined]
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.stopping.set()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2, lifespan="off")
    return Server(config)


def start_server(directories: Sequence[str | os.PathLike[str]], host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> RunningServer:
    """Serve in a daemon thread on ``port`` (0: a free one); returns once it accepts connections."""
    app = create_app(directories, host=host, **options)
    server = _uvicorn_server(app, host, port)
    thread = threading.Thread(target=server.run, name="pbtlab-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"pbtlab serve could not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    return RunningServer(f"http://{_url_host(host)}:{bound[1]}", server, thread)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_forever(directories: Sequence[str | os.PathLike[str]], host: str = "127.0.0.1",
                  port: int = DEFAULT_PORT, allow_missing: bool = False, **options: Any) -> None:
    """Serve until interrupted (Ctrl-C), printing the address and, off loopback, a warning."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be a port number in [0, 65535], got {describe(port)}")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"--host must be an address such as 127.0.0.1, got {describe(host)}")
    app = create_app(directories, host=host, allow_missing=allow_missing, **options)
    if host not in LOOPBACK_HOSTS:
        print(f"pbtlab serve: WARNING: listening on {host}, not only on this machine: anyone who can reach "
              f"port {port} can read these experiments (read-only, no login).", file=sys.stderr)
    server = _uvicorn_server(app, host, port)
    thread = threading.Thread(target=_announce, args=(server, host, directories), daemon=True)
    thread.start()
    server.run()


def _announce(server: Any, host: str, directories: Sequence[Any]) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started and server.servers:
        port = server.servers[0].sockets[0].getsockname()[1]
        shown = ", ".join(os.fspath(d) for d in directories)
        print(f"pbtlab serve: {shown} at http://{_url_host(host)}:{port}/  (Ctrl-C stops)", flush=True)

"""Running the ASGI app on uvicorn: in the foreground (`tunestack serve`, stopped by Ctrl-C or SIGTERM, which
finish the requests in flight first) or in a background thread (`serve --evaluate`, tests).

The socket is bound before uvicorn starts, so port 0 means a free port and the address is known at once.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["BackgroundServer", "bind", "serve_forever"]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app, graceful_s: float):
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                          timeout_graceful_shutdown=graceful_s, timeout_keep_alive=5, h11_max_incomplete_event_size=65536)


def serve_forever(app, sock: socket.socket, graceful_s: float = 30.0) -> None:
    import uvicorn

    uvicorn.Server(_config(app, graceful_s)).run(sockets=[sock])


class BackgroundServer:
    """`with BackgroundServer(app) as server: server.base_url` - uvicorn in a daemon thread on 127.0.0.1."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, graceful_s: float = 5.0):
        import uvicorn

        self.sock = bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = uvicorn.Server(_config(app, graceful_s))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

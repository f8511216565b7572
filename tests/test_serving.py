"""`ecert serve` binds its socket so accepted connections get TCP_NODELAY (see api/serving.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket

import uvicorn

from api.serving import NoDelayConfig


def _accepted_nodelay(sock: socket.socket) -> int:
    """Serve ``sock`` the way a uvicorn worker does (asyncio create_server on the inherited
    socket), connect once, and return TCP_NODELAY of the accepted server-side socket."""
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            s = transport.get_extra_info("socket")
            seen.append(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        host, port = sock.getsockname()[:2]
        _r, w = await asyncio.open_connection(host, port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        w.close()
        server.close()

    asyncio.run(main())
    return seen[0]


def _in_child(sock: socket.socket, out) -> None:
    out.send(_accepted_nodelay(sock))


def test_worker_processes_accept_with_tcp_nodelay():
    """The socket goes to worker processes by pickling (multiprocessing spawn, as uvicorn's
    Multiprocess does); the accepted connections there must still get TCP_NODELAY."""
    sock = NoDelayConfig("api.app:app", host="127.0.0.1", port=0, workers=2).bind_socket()
    assert sock.proto == socket.IPPROTO_TCP
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_in_child, args=(sock, child))
    p.start()
    try:
        assert parent.poll(30), "the worker process did not answer"
        assert parent.recv() == 1
    finally:
        p.join(10)
        sock.close()


def test_plain_uvicorn_config_is_what_needed_the_fix():
    """Documents the upstream behaviour the fix works around; if uvicorn fixes it, this test
    tells us api/serving.py can go."""
    sock = uvicorn.Config("api.app:app", host="127.0.0.1", port=0).bind_socket()
    try:
        assert sock.proto == 0
        assert _accepted_nodelay(sock) == 0
    finally:
        sock.close()

"""The token hop's own client (sidecar.http.upstream_client) against real sockets: an asyncio
server that answers with the bytes each test scripts, as a token endpoint (or a broken one)
would. What the handlers rely on: answers read whole and bounded, connections reused only
when that is safe, nothing sent twice, every failure a typed exception (a 502 or 504)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import trustme
from multidict import CIMultiDict
from yarl import URL

from sidecar.http.upstream_client import (
    AnswerTooLargeError,
    MalformedAnswerError,
    RawAnswer,
    ServerDisconnectedError,
    UpstreamClient,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Upstream"], Awaitable[None]]


@dataclass
class Upstream:
    """A listening socket whose connections run `script`; what arrived, connection by
    connection."""

    script: Script
    port: int = 0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self.script(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request: its head, and a body of its Content-Length; None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answer_each(answer: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            writer.write(answer)
            await writer.drain()
    return script


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[tuple[Upstream, UpstreamClient]]]]:
    servers: list[asyncio.Server] = []
    clients: list[UpstreamClient] = []

    async def run(script: Script, *, pool_size: int = 10, keepalive: float = 30.0,
                  context: ssl.SSLContext | None = None,
                  client_context: ssl.SSLContext | None = None,
                  ) -> tuple[Upstream, UpstreamClient]:
        upstream = Upstream(script)
        server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0, ssl=context)
        servers.append(server)
        upstream.port = server.sockets[0].getsockname()[1]
        scheme = "https" if context else "http"
        host = "localhost" if context else "127.0.0.1"
        client = UpstreamClient(URL(f"{scheme}://{host}:{upstream.port}"), pool_size=pool_size,
                                keepalive_seconds=keepalive, connect_timeout_seconds=2,
                                ssl_context=client_context)
        clients.append(client)
        return upstream, client

    yield run
    for client in clients:
        await client.close()
    for server in servers:
        server.close()
        await server.wait_closed()


Start = Callable[..., Awaitable[tuple[Upstream, UpstreamClient]]]


async def post(client: UpstreamClient, body: bytes = b"grant_type=client_credentials", *,
               headers: CIMultiDict[str] | None = None, timeout: float = 5,
               max_body: int = 1024) -> RawAnswer:
    return await client.exchange("POST", "/token?x=1", headers or CIMultiDict(), body,
                                 timeout=timeout, max_body=max_body)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Polled, not a fixed sleep: a loaded machine only makes it slower."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------
# What goes out.


async def test_the_request_goes_out_with_host_length_and_the_bytes_as_received(
        start: Start) -> None:
    upstream, client = await start(answer_each(OK))
    headers = CIMultiDict({"Authorization": "Basic YXBwOnNlY3JldA==",
                           "X-Name": "Ren\udce9e",  # obs-text as aiohttp reads it: 0xe9
                           "Transfer-Encoding": "chunked"})
    answer = await post(client, headers=headers)
    assert (answer.status, answer.body, answer.headers["Content-Type"]) == (
        200, b"{}", "application/json")
    head, _, body = upstream.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /token?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{upstream.port}".encode() in lines
    assert b"Content-Length: 29" in lines and b"Accept: */*" in lines
    assert b"X-Name: Ren\xe9e" in lines  # the byte the client sent, not UTF-8's two
    assert not any(line.lower().startswith(b"transfer-encoding") for line in lines)
    assert body == b"grant_type=client_credentials"


async def test_a_host_and_an_accept_the_handler_set_are_kept(start: Start) -> None:
    upstream, client = await start(answer_each(OK))
    await post(client, headers=CIMultiDict({"Host": "as.example.com", "Accept": "text/x"}))
    lines = upstream.requests[0].split(b"\r\n")
    assert b"Host: as.example.com" in lines and b"Accept: text/x" in lines
    assert not any(line.startswith(b"Host: 127.0.0.1") for line in lines)


async def test_a_get_without_a_body_has_no_content_length(start: Start) -> None:
    upstream, client = await start(answer_each(OK))
    await client.exchange("GET", "/.well-known/openid-configuration", CIMultiDict(), None,
                          timeout=5, max_body=1024)
    assert b"content-length" not in upstream.requests[0].lower()


async def test_a_line_break_in_a_header_value_is_refused_before_anything_is_sent(
        start: Start) -> None:
    upstream, client = await start(answer_each(OK))
    with pytest.raises(ValueError, match="header injection"):
        await post(client, headers=CIMultiDict({"X-Evil": "a\r\nX-Token-Client-Id: admin"}))
    assert upstream.connections == 0


# ---------------------------------------------------------------------------------------
# How answers are read.


@pytest.mark.parametrize(("answer", "body"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\":\r\n"
     b"3\r\n 1}\r\n0\r\n\r\n", b'{"a": 1}'),
    (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, b"{}"),
    (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK, b"{}"),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
], ids=["chunked", "100 Continue first", "103 Early Hints first", "204"])
async def test_answers_are_read_whole(start: Start, answer: bytes, body: bytes) -> None:
    _, client = await start(answer_each(answer))
    for _ in range(2):  # and the connection stays usable
        assert (await post(client)).body == body


async def test_an_answer_that_ends_at_close_is_read_to_the_close(start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
                     b'{"error": "invalid_grant"}')
        await writer.drain()

    upstream, client = await start(script)
    answer = await post(client)
    assert (answer.status, answer.body) == (400, b'{"error": "invalid_grant"}')
    await post(client)  # not reused: a second connection
    assert upstream.connections == 2


async def test_answer_headers_keep_their_bytes(start: Start) -> None:
    _, client = await start(answer_each(
        b"HTTP/1.1 200 OK\r\nX-Name: Ren\xe9e\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 0\r\n\r\n"))
    answer = await post(client)
    assert answer.headers["X-Name"].encode("utf-8", "surrogateescape") == b"Ren\xe9e"
    assert answer.headers.getall("Set-Cookie") == ["a=1", "b=2"]


# ---------------------------------------------------------------------------------------
# Failures: typed, and the connection never reused.


async def test_an_answer_over_the_bound_by_its_content_length(start: Start) -> None:
    upstream, client = await start(answer_each(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048))
    with pytest.raises(AnswerTooLargeError):
        await post(client, max_body=1024)
    await eventually(lambda: upstream.open_now == 0)


async def test_an_answer_over_the_bound_by_its_chunks(start: Start) -> None:
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    upstream, client = await start(answer_each(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"))
    with pytest.raises(AnswerTooLargeError):
        await post(client, max_body=2048)
    await eventually(lambda: upstream.open_now == 0)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 2OO OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000,  # a header line that never ends
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n{}",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
], ids=["bad status", "two lengths", "not HTTP", "a huge head", "a head that never ends",
        "an upgrade",
        "a length and chunked (RFC 9112 §6.1: smuggling)", "chunked not last", "bare LF"])
async def test_a_malformed_answer(start: Start, answer: bytes) -> None:
    upstream, client = await start(answer_each(answer))
    with pytest.raises(MalformedAnswerError):
        await post(client)
    await eventually(lambda: upstream.open_now == 0)


async def test_a_connection_closed_before_the_answer_ends(start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access")
        await writer.drain()

    _, client = await start(script)
    with pytest.raises(ServerDisconnectedError):
        await post(client)


async def test_an_upstream_that_does_not_answer_times_out_and_loses_the_connection(
        start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        await upstream.read_request(reader)
        await upstream.read_request(reader)  # until the client closes

    upstream, client = await start(script)
    with pytest.raises(TimeoutError):
        await post(client, timeout=0.2)
    await upstream.closed_by_client.wait()
    assert len(upstream.requests) == 1  # sent once, never again


async def test_no_upstream_listening_is_an_os_error() -> None:
    refused = UpstreamClient(URL("http://127.0.0.1:9"), pool_size=1, keepalive_seconds=1,
                             connect_timeout_seconds=2)
    with pytest.raises(OSError):
        await post(refused)


# ---------------------------------------------------------------------------------------
# The pool.


async def test_a_keep_alive_connection_is_reused(start: Start) -> None:
    upstream, client = await start(answer_each(OK))
    for _ in range(5):
        await post(client)
    assert (upstream.connections, len(upstream.requests)) == (1, 5)


async def test_connection_close_is_honoured(start: Start) -> None:
    upstream, client = await start(answer_each(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"))
    for _ in range(3):
        await post(client)
    assert upstream.connections == 3


async def test_a_connection_the_upstream_closed_while_idle_is_not_picked(start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(OK)
        await writer.drain()  # then close, as an upstream's idle timeout does

    upstream, client = await start(script)
    await post(client)
    await eventually(lambda: upstream.open_now == 0)
    await asyncio.sleep(0.05)  # the close reaches the client's event loop
    assert (await post(client)).status == 200
    assert upstream.connections == 2


async def test_bytes_sent_on_an_idle_connection_end_it(start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        await upstream.read_request(reader)
        writer.write(OK + OK)  # a second answer nobody asked for
        await writer.drain()
        while await upstream.read_request(reader) is not None:
            writer.write(OK)

    upstream, client = await start(script)
    await post(client)
    await upstream.closed_by_client.wait()
    assert (await post(client)).body == b"{}"
    assert upstream.connections == 2


async def test_an_idle_connection_is_closed_after_keepalive_seconds(start: Start) -> None:
    upstream, client = await start(answer_each(OK), keepalive=0.1)
    await post(client)
    await asyncio.wait_for(upstream.closed_by_client.wait(), 5)


async def test_at_most_pool_size_connections_the_others_wait_in_turn(start: Start) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            await asyncio.sleep(0.02)
            writer.write(OK)

    upstream, client = await start(script, pool_size=2)
    answers = await asyncio.gather(*(post(client) for _ in range(8)))
    assert [a.status for a in answers] == [200] * 8
    assert upstream.most_open <= 2 and upstream.connections == 2


async def test_a_request_that_times_out_waiting_for_a_connection_frees_nothing_it_had_not(
        start: Start) -> None:
    held = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     upstream: Upstream) -> None:
        while await upstream.read_request(reader) is not None:
            await held.wait()
            writer.write(OK)

    upstream, client = await start(script, pool_size=1)
    first = asyncio.ensure_future(post(client))
    await eventually(lambda: len(upstream.requests) == 1)
    with pytest.raises(TimeoutError):
        await post(client, timeout=0.1)  # waited for the one connection, in vain
    held.set()
    assert (await first).status == 200
    assert (await post(client)).status == 200  # the slot came back once, not twice
    assert upstream.most_open == 1


async def test_https_upstream(start: Start) -> None:
    authority = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    upstream, client = await start(answer_each(OK), context=server_context,
                                   client_context=client_context)
    assert (await post(client)).body == b"{}"
    untrusting = UpstreamClient(URL(f"https://localhost:{upstream.port}"), pool_size=1,
                                keepalive_seconds=1, connect_timeout_seconds=2)
    with pytest.raises(ssl.SSLError):
        await post(untrusting)


async def test_a_large_answer_whose_head_and_body_come_in_one_read_is_read(
        start: Start) -> None:
    # The bound on the head is on the head: a body within max_body that arrives in the same
    # read as the head (loopback delivers 100 KB at once) is no reason to refuse the answer.
    body = b"x" * 100_000
    _, client = await start(answer_each(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + body))
    assert (await post(client, max_body=1_000_000)).body == body

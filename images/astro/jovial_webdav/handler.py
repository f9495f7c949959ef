"""The authenticated WebDAV endpoint: a streaming reverse proxy from Jupyter to the WsgiDAV backend.

Token-authenticated clients (rclone, curl) need no XSRF token; a browser with the login cookie
does for every method but GET/HEAD/OPTIONS, as for every other request to the server
(JupyterHandler.prepare checks it)."""

import asyncio
import os
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from jupyter_server.base.handlers import JupyterHandler
from tornado import httpclient, httputil, web

from .backend import ensure_started

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})
WRITE_METHODS = frozenset({"PUT", "DELETE", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"})
# Headers that belong to one hop, or carry the user's credentials (the backend needs none).
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect",
     "proxy-authorization", "proxy-authenticate", "authorization", "cookie", "content-length", "host"}
)
# Uploads are bounded by the user's disk quota, not by the server's default 512 MiB body limit
# (bodies are streamed to disk, never held in memory).
MAX_UPLOAD_BYTES = int(os.environ.get("JOVIAL_WEBDAV_MAX_UPLOAD_BYTES", str(1 << 40)))
QUEUED_CHUNKS = 16


@web.stream_request_body
class WebDAVHandler(JupyterHandler):
    """Every WebDAV method, authenticated and authorised by the Jupyter server, then forwarded."""

    SUPPORTED_METHODS = tuple(sorted(READ_METHODS | WRITE_METHODS))  # type: ignore[assignment]

    async def prepare(self) -> None:  # type: ignore[override]
        """Decide, before the body is read, whether this is the server's own user; if so, start
        forwarding (the body streams to the backend as it arrives).

        A refusal (403) is answered once the body has arrived, read and dropped within the server's
        usual body limit: answering earlier would make Tornado close the connection under the
        proxy in front, which may then answer 503 instead of the 403.
        """
        self._refusal: web.HTTPError | None = None
        self._forwarding: asyncio.Future[None] | None = None
        try:
            await super().prepare(_redirect_to_login=False)
            action = "read" if self.request.method in READ_METHODS else "write"
            if self.current_user is None or not self.authorizer.is_authorized(self, self.current_user, action, "contents"):
                raise web.HTTPError(403)
        except web.HTTPError as refusal:
            self._refusal = refusal
            return
        self.request.connection.set_max_body_size(MAX_UPLOAD_BYTES)
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)
        self._forwarding = asyncio.ensure_future(self._forward())

    async def data_received(self, chunk: bytes) -> None:
        if self._forwarding is not None:
            await self._chunks.put(chunk)  # waits while the backend is slower than the client

    async def _respond(self) -> None:
        if self._forwarding is None:
            raise self._refusal or web.HTTPError(403)
        await self._chunks.put(None)
        await self._forwarding

    def on_connection_close(self) -> None:
        if getattr(self, "_forwarding", None) is not None:
            self._forwarding.cancel()

    get = head = options = propfind = put = delete = proppatch = _respond  # type: ignore[assignment]
    mkcol = copy = move = lock = unlock = _respond  # type: ignore[assignment]

    @property
    def content_security_policy(self) -> str:
        """No script or resource of a served file runs or loads, with this server's origin or any:
        an HTML or SVG file in the home opened from here cannot act with the user's access.
        First, so that these win over a weaker directive of the same name in the site's policy."""
        return f"sandbox; default-src 'none'; {super().content_security_policy}"

    def _backend_headers(self) -> httputil.HTTPHeaders:
        headers = httputil.HTTPHeaders()
        for name, value in self.request.headers.get_all():
            if name.lower() not in NOT_FORWARDED:
                headers.add(name, value)
        if "Destination" in headers:
            # Only the path: the backend then needs not know the public scheme and host name.
            headers["Destination"] = urlsplit(headers["Destination"])._replace(scheme="", netloc="").geturl()
        if "Content-Length" in self.request.headers:
            headers["Content-Length"] = self.request.headers["Content-Length"]
        return headers

    async def _body(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        while (chunk := await self._chunks.get()) is not None:
            await write(chunk)

    async def _forward(self) -> None:
        port = await asyncio.to_thread(ensure_started, os.path.expanduser("~"), self.base_url + "webdav")
        headers = self._backend_headers()
        has_body = "Content-Length" in headers or "chunked" in self.request.headers.get("Transfer-Encoding", "")
        if not has_body:
            await self._body(_discard)
        status_line: list[str] = []
        received = httputil.HTTPHeaders()

        def on_header(line: str) -> None:
            if not status_line:
                status_line.append(line)
            elif line.strip():
                received.parse_line(line)
            else:
                self._send_headers(status_line[0], received)

        def on_chunk(chunk: bytes) -> Awaitable[None]:
            # The HTTP client reads the backend's next chunk only once this one is sent to the
            # client (Tornado 6.6+): a slow reader slows the backend instead of filling memory.
            self.write(chunk)
            return self.flush()

        request = httpclient.HTTPRequest(
            f"http://127.0.0.1:{port}{self.request.uri}",
            method=self.request.method,
            headers=headers,
            body_producer=self._body if has_body else None,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            decompress_response=False,
            header_callback=on_header,
            streaming_callback=on_chunk,
            connect_timeout=30,
            request_timeout=24 * 3600,
        )
        client = httpclient.AsyncHTTPClient(force_instance=True, max_body_size=1 << 62)
        try:
            response = await client.fetch(request, raise_error=False)
        finally:
            client.close()
        if not status_line:  # the backend did not answer at all
            self.set_status(502)
            self.write(f"The WebDAV backend did not answer: {response.error}")
        elif response.error is not None and not isinstance(response.error, httpclient.HTTPClientError):
            # Cut off after its headers (and part of the body) were sent on: the client must see the
            # response end short, not wait for the bytes its Content-Length still promises.
            self.log.error("The WebDAV backend broke off %s %s: %s", self.request.method, self.request.path, response.error)
            self.request.connection.close()
            return
        self.finish()

    def _send_headers(self, status_line: str, received: httputil.HTTPHeaders) -> None:
        """The backend's status and headers (but hop-by-hop ones) as this response's."""
        self.set_status(int(status_line.split()[1]))
        self.clear_header("Content-Type")
        for name, value in received.get_all():
            if name.lower() not in NOT_FORWARDED or name.lower() == "content-length":
                self.add_header(name, value)



async def _discard(_: bytes) -> None:
    """Where the body of a request without one goes (nothing arrives)."""


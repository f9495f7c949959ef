"""jovial_webdav: the user's home over WebDAV at /user/<name>/webdav/, inside their own server.

A Jupyter server extension. Requests to <base_url>webdav/ pass the server's own authentication
(the hub's token in `Authorization: token ...` or the hub login cookie, with the access scope of
this very server: another user's token is refused with 403 before any byte of the body is read)
and are then forwarded, streamed both ways, to a WsgiDAV server that this process runs on
127.0.0.1 (started on first use). Files are therefore read and written by the user's own
server process: the user's uid and groups, on the same home mount JupyterLab uses.
"""

from typing import Any

from . import backend
from .handler import WebDAVHandler

__all__ = ["WebDAVHandler"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jovial_webdav"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Route <base_url>webdav and everything below it to the WebDAV handler."""
    web_app = server_app.web_app
    base_url = web_app.settings["base_url"]
    pattern = base_url.rstrip("/") + "/webdav(?:/.*)?"
    web_app.add_handlers(".*$", [(pattern, WebDAVHandler)])
    server_app.log.info("jovial_webdav: the home directory is served over WebDAV at %swebdav/", base_url)


def _unload_jupyter_server_extension(server_app: Any) -> None:
    """At the server's shutdown: stop the WsgiDAV server, whose threads would keep it running."""
    backend.stop()

"""The WsgiDAV server behind the handler: the home directory, in this process, on 127.0.0.1."""

import os
import threading
from typing import Any

_lock = threading.Lock()
_server: Any = None  # cheroot's wsgi.Server, once started
# How long WsgiDAV waits on its socket to the handler: a download goes at the pace of its reader
# (the handler reads the next chunk once the client took the last), so a reader that pauses makes
# the backend wait as long. cheroot's default, 10 s, cut such downloads off.
BACKEND_SOCKET_TIMEOUT = 24 * 3600


def wsgidav_config(root: str, mount_path: str) -> dict[str, Any]:
    """WsgiDAV's settings: `root` served read-write at `mount_path`, no login of its own (the
    Jupyter server in front has authenticated the request), symlinks not followed, in-memory
    locks and dead properties, no HTML listing page, quiet logs."""
    return {
        "mount_path": mount_path.rstrip("/"),
        "provider_mapping": {"/": {"root": root, "readonly": False}},
        "fs_dav_provider": {"follow_symlinks": False},
        "simple_dc": {"user_mapping": {"*": True}},
        "http_authenticator": {"accept_basic": False, "accept_digest": False, "default_to_digest": False},
        "lock_storage": True,
        "property_manager": True,
        "dir_browser": {"enable": False},
        "suppress_version_info": True,
        "verbose": 1,
        "logging": {"enable": False},
    }


def ensure_started(root: str, mount_path: str) -> int:
    """The port of this process's WsgiDAV server, started on first call."""
    global _server
    with _lock:
        if _server is None:
            # Imported here: servers that never use WebDAV never pay for it at start.
            from cheroot import wsgi
            from wsgidav.wsgidav_app import WsgiDAVApp

            config = wsgidav_config(os.path.realpath(root), mount_path)
            # WsgiDAV expects its mount path in SCRIPT_NAME: the dispatcher moves it there.
            app = wsgi.PathInfoDispatcher({config["mount_path"]: WsgiDAVApp(config)})
            server = wsgi.Server(
                ("127.0.0.1", 0), app, numthreads=8, server_name="jovial-webdav", timeout=BACKEND_SOCKET_TIMEOUT
            )
            server.prepare()  # binds the socket and starts the worker threads
            threading.Thread(target=server.serve, name="jovial-webdav", daemon=True).start()
            _server = server
        return _server.bind_addr[1]


def stop() -> None:
    """Stop the WsgiDAV server if it was started: its worker threads are not daemons, and would
    keep the process from exiting when the Jupyter server stops."""
    global _server
    with _lock:
        if _server is not None:
            _server.stop()
            _server = None

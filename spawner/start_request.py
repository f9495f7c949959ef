"""Whether a start request named the user's choices, or left JupyterHub to fill them in.

JupyterHub hands a start that names no options (a REST start with an empty body, or the spawn
page when it shows no form) the options of the user's previous start, which it keeps in its
database. Those are the user's last choice, not a request: the spawner checks them against what
the site offers now and drops what it no longer offers, instead of refusing the start.
"""

from typing import Any

RESERVED_QUERY_ARGUMENTS = frozenset({"next", "display_name"})  # the spawn page's own, never options


def request_named_options(handler: Any) -> bool:
    """True when the request that started the server named its options (the spawn form, options in
    the spawn page's query, or a REST body with options), or when no request started it (code that
    starts a spawner sets its options itself)."""
    if handler is None:
        return True
    if hasattr(handler, "get_server_json_body"):  # POST /hub/api/users/<name>/server(s/<server>)
        return handler.get_server_json_body()["user_options"] is not None
    request = handler.request
    if request.method == "POST":  # the spawn form
        return True
    return bool(set(request.query_arguments) - RESERVED_QUERY_ARGUMENTS)  # /hub/spawn?opt-profile=...

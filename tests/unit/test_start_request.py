"""Which start requests name the user's options, and which leave JupyterHub to fill in the stored ones
(the request handlers here stand in for JupyterHub's: only the attributes read are given)."""

from types import SimpleNamespace

import pytest

from jovial.start_request import request_named_options


def rest_start(user_options: dict | None) -> SimpleNamespace:
    return SimpleNamespace(get_server_json_body=lambda: {"display_name": None, "user_options": user_options})


def spawn_page(method: str, query: dict[str, list[bytes]]) -> SimpleNamespace:
    return SimpleNamespace(request=SimpleNamespace(method=method, query_arguments=query))


@pytest.mark.parametrize(
    ("handler", "named"),
    [
        (None, True),  # started by code, which sets the options itself
        (rest_start({"profile": "large"}), True),
        (rest_start({}), True),  # {"user_options": {}}: explicitly the site's defaults
        (rest_start(None), False),  # an empty body: JupyterHub reuses the stored options
        (spawn_page("POST", {}), True),  # the spawn form
        (spawn_page("GET", {"opt-profile": [b"large"]}), True),
        (spawn_page("GET", {}), False),  # no form to show: JupyterHub starts with the stored options
        (spawn_page("GET", {"next": [b"/user/alice/lab"]}), False),
    ],
)
def test_which_requests_name_options(handler: object, named: bool) -> None:
    assert request_named_options(handler) is named

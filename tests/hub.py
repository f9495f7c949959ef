"""Talking to the deployed Jovial hub as a user would: log in through the proxy, then use the REST API."""

import base64
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import docker
import requests

STATE_DIR = Path(os.environ.get("JOVIAL_STATE_DIR", "/var/lib/jovial"))
FS_ROOT = Path(os.environ.get("JOVIAL_FS_ROOT", STATE_DIR / "lustre"))
HUB_URL = f"http://127.0.0.1:{os.environ.get('JOVIAL_HTTP_PORT', '8000')}"
SMALL = {"profile": "small"}  # the dev site's default size: 1 core, 2 GB
# The options the hub remembered for each (hub URL, user) when the tests first met that user: every
# stop puts them back, so that the hub database, which outlives a test run, is as the run found it.
_found_options: dict[tuple[str, str], dict | None] = {}


def demo_password() -> str:
    return (STATE_DIR / "secrets" / "jovial_demo_password").read_text().strip()


def post_login(session: requests.Session, name: str, password: str, hub_url: str = HUB_URL) -> requests.Response:
    """Submit the hub's login form as a browser would; the reply is not followed (302 = logged in)."""
    login_page = session.get(f"{hub_url}/hub/login", timeout=10)
    login_page.raise_for_status()
    xsrf = session.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', login_page.text).group(1)
    return session.post(
        f"{hub_url}/hub/login?next=",
        data={"username": name, "password": password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=30,
    )


class HubUser:
    """A logged-in user of the hub with an API token of their own."""

    def __init__(self, name: str, password: str | None = None, hub_url: str = HUB_URL) -> None:
        self.name = name
        self.hub_url = hub_url
        self.session = requests.Session()
        reply = post_login(self.session, name, password or demo_password(), hub_url)
        if reply.status_code != 302:
            raise PermissionError(f"login of {name} refused: HTTP {reply.status_code}")
        token_reply = self.session.post(
            f"{self.hub_url}/hub/api/users/{name}/tokens",
            json={"note": "jovial tests", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/")},
            timeout=10,
        )
        token_reply.raise_for_status()
        self.token = token_reply.json()["token"]
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"token {self.token}"
        if (hub_url, name) not in _found_options:
            _found_options[(hub_url, name)] = self.stored_options()

    def model(self) -> dict:
        # 30 s: under 50 stops at once on 2 cores the hub took more than 10 s to answer (measured).
        reply = self.api.get(f"{self.hub_url}/hub/api/users/{self.name}", timeout=30)
        reply.raise_for_status()
        return reply.json()

    @property
    def server_api_url(self) -> str:
        return f"{self.hub_url}/hub/api/users/{self.name}/server"

    def stored_options(self) -> dict | None:
        """The options the hub remembers from the user's previous start (None: no record of a
        server), from which a start that names no options begins."""
        # A PATCH that changes nothing answers with the database's record; a GET may answer from a
        # spawner kept in memory, whose options a PATCH does not update. JupyterHub refuses the
        # PATCH while the server is active; then its spawner holds the options it was started with.
        reply = self.api.patch(self.server_api_url, json={"display_name": ""}, timeout=60)
        if reply.status_code == 400 and "is active" in reply.text:
            reply = self.api.get(self.server_api_url, timeout=60)
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        return reply.json()["user_options"]

    def restore_stored_options(self) -> None:
        """Put back the options the hub remembered for the user when the tests first met them."""
        found = _found_options[(self.hub_url, self.name)]
        reply = self.api.patch(self.server_api_url, json={"user_options": found or {}}, timeout=60)
        if reply.status_code != 404:  # 404: the hub has no record of a server of theirs, so none to restore
            assert reply.status_code == 200, f"could not restore {self.name}'s stored options: HTTP {reply.status_code} {reply.text}"

    def start(self, options: dict | None) -> list[str]:
        """Start the default server with `options` (None: a request that names none, so that the hub
        uses those it remembers) and follow its progress stream; return the messages seen.

        The start request blocks while the hub waits for a quick spawn, so it runs in a thread
        and the progress stream is opened as soon as the hub reports the spawn pending.
        """
        body = None if options is None else {"user_options": options}
        with ThreadPoolExecutor(1) as pool:
            request = pool.submit(self.api.post, self.server_api_url, json=body, timeout=60)
            deadline = time.monotonic() + 30
            while not (self.model()["servers"].get("") or request.done()) and time.monotonic() < deadline:
                time.sleep(0.05)
            messages = self.progress()
            reply = request.result()
        assert reply.status_code in (201, 202), reply.text
        return messages

    def progress(self) -> list[str]:
        """The messages of the spawn's progress stream, up to ready or failed."""
        return [event.get("message", "") for event in self.progress_events()]

    def progress_events(self) -> list[dict]:
        """The events of the spawn's progress stream, up to the one saying ready or failed."""
        events = []
        with self.api.get(f"{self.hub_url}/hub/api/users/{self.name}/server/progress", stream=True, timeout=180) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        return events

    def wait_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.model()["servers"].get("")
            if server and server["ready"]:
                return server
            time.sleep(0.5)
        raise TimeoutError(f"{self.name}'s server not ready after {timeout} s")

    def stop(self, restore_options: bool = True) -> None:
        """Stop the default server (if it runs), then put back the options the hub remembered for
        the user when the tests first met them (unless a test still needs the ones it chose)."""
        reply = self.api.delete(self.server_api_url, timeout=60)
        assert reply.status_code in (202, 204, 400), reply.text  # 400: it was not running
        deadline = time.monotonic() + 60
        while self.model()["servers"].get("") and time.monotonic() < deadline:
            time.sleep(0.5)
        if restore_options:
            self.restore_stored_options()

    def server_answers(self) -> bool:
        """Whether the user's server answers through the proxy right now."""
        return self.why_server_does_not_answer() is None

    def why_server_does_not_answer(self) -> str | None:
        """What went wrong asking the user's server through the proxy right now; None if it answered.
        It may take its time (30 s): whether it answers is asked here, how fast is the benchmark's
        business (a server's first request waits on the hub's token check, which a burst of 50
        starts on 2 cores slows down to several seconds)."""
        try:
            reply = self.server_get("api/status", timeout=30)
        except requests.RequestException as e:
            return f"no answer: {e!r}"
        if reply.status_code == 200:
            return None
        redirects = "".join(f"HTTP {r.status_code} to {r.headers.get('Location')}, then " for r in reply.history)
        return f"{redirects}HTTP {reply.status_code} from {reply.url}: {reply.text[:300]!r}"

    def server_get(self, path: str, **kwargs) -> requests.Response:
        """A request to the user's own server, through the proxy."""
        return self.api.get(f"{self.hub_url}/user/{self.name}/{path}", **{"timeout": 30, **kwargs})


    def run_in_terminal(self, command: str, timeout: float = 30) -> tuple[int, str]:
        """Run `command` in a new terminal of the user's server, as a process of the server itself
        (what a JupyterLab user's terminal runs); return its exit status and what it printed."""
        import websocket  # here: benchmarks/ imports this module where websocket-client is not installed

        reply = self.api.post(f"{self.hub_url}/user/{self.name}/api/terminals", timeout=30)
        reply.raise_for_status()
        terminal = reply.json()["name"]
        marker = uuid.uuid4().hex
        ws_url = self.hub_url.replace("http", "ws", 1) + f"/user/{self.name}/terminals/websocket/{terminal}"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        try:
            # The typed line is echoed too, so the markers are matched only at the start of a line
            # (or right after the "\x1b[?2004l\r" with which bash's readline ends bracketed paste);
            # a newline goes before the end marker in case the output does not end with one.
            ws.send(json.dumps(["stdin", f"echo {marker}-begin; ( {command} ) 2>&1; s=$?; echo; echo {marker}-end-$s\r"]))
            output, deadline = "", time.monotonic() + timeout
            pattern = re.compile(rf"(?:^|\r){marker}-begin\r?\n(.*?)^{marker}-end-(\d+)", re.S | re.M)
            while not (found := pattern.search(output)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{command!r} did not finish in {timeout} s; output: {output[-500:]}")
                kind, *data = json.loads(ws.recv())
                if kind == "stdout":
                    output += data[0]
        finally:
            ws.close()
            self.api.delete(f"{self.hub_url}/user/{self.name}/api/terminals/{terminal}", timeout=30)
        return int(found.group(2)), found.group(1).replace("\r\n", "\n").strip()


    def run_python(self, script: str, cwd: str = "~", timeout: float = 120) -> tuple[int, str]:
        """Run a Python script in a terminal of the user's server, from `cwd`; the script travels
        as base64, so the terminal's line editing never sees its text."""
        encoded = base64.b64encode(script.encode()).decode()
        return self.run_in_terminal(f"cd {cwd} && echo {encoded} | base64 -d | python -", timeout=timeout)


@contextmanager
def started_with_workdir(name: str, options: dict, workdir: str) -> Iterator[HubUser]:
    """The user's server, started with `options`, and a directory `workdir` the user made in their
    home; afterwards the server is stopped and removed, and the directory deleted."""
    remove_servers_of(name)
    user = HubUser(name)
    try:
        user.start(options)
        user.wait_ready()
        status, output = user.run_in_terminal(f"mkdir -p ~/{workdir}")
        assert status == 0, output
        yield user
    finally:
        try:
            user.stop()
        finally:
            remove_servers_of(name)
            shutil.rmtree(FS_ROOT / "home" / name / workdir, ignore_errors=True)


def hub_log(client: docker.DockerClient, since: int, stack: str = "jovial") -> str:
    """What the stack's hub logged since `since` (seconds since the epoch), with timestamps."""
    service = client.services.get(f"{stack}_hub")
    return b"".join(service.logs(since=since, stdout=True, stderr=True, timestamps=True)).decode()


def remove_servers_of(*usernames: str, client: docker.DockerClient | None = None) -> None:
    """Remove any user service (and its configs) the tests left, and wait for its containers to go
    (from `client`'s engine: by default the local one)."""
    client = client or docker.from_env()
    for name in usernames:
        for service in client.services.list(filters={"label": f"jovial.user={name}"}):
            service.remove()
        for config in client.configs.list(filters={"label": f"jovial.object=jupyter-{name}"}):
            try:
                config.remove()
            except docker.errors.APIError:
                pass
    wait_for_no_containers(client, *usernames)


def wait_for_no_containers(client: docker.DockerClient, *usernames: str, timeout: float = 60) -> None:
    """Wait until the users' containers have gone (those of removed services take seconds)."""
    wait_for_no_containers_labelled(client, *(f"jovial.user={n}" for n in usernames), timeout=timeout)


def wait_for_no_containers_labelled(client: docker.DockerClient, *labels: str, timeout: float = 60) -> None:
    """Wait until no container of the engine, running or not, has any of the labels (`key=value`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The low-level list: the high-level one inspects each container, which may vanish meanwhile (404).
        left = [c for label in labels for c in client.api.containers(all=True, filters={"label": label})]
        if not left:
            return
        time.sleep(0.5)
    raise TimeoutError(f"containers still there after {timeout} s: {[c['Names'][0] for c in left]}")

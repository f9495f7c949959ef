"""Files in and out of a user's home, end to end through the proxy (HUB_URL) to alice's own
server (the astro image, which carries the WebDAV endpoint), checked on the host's filesystem.

- A 500 MiB upload as JupyterLab's file browser makes it (PUT /api/contents/<path> in 1 MiB
  base64 chunks numbered 1, 2, ..., -1 for the last), then the download through /files/.
- WebDAV at /user/alice/webdav/ with her hub token: put, get, list (PROPFIND), make a directory,
  move, delete, with requests and with curl, including a 520 MiB streamed upload (more than the
  Jupyter server's default 512 MiB request body limit); bob's token and no token are refused
  before anything is read or written.
- A WebDAV download of a file larger than her server's memory limit, to a reader that stops
  reading for a while: the server's processes do not grow (the download streams with
  backpressure instead of being buffered), it is not killed, and every byte arrives.
Everything the tests make is removed at the end, also when they fail.
"""

import base64
import hashlib
import os
import random
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import docker
import pytest
import requests
from docker.models.containers import Container

from tests.hub import FS_ROOT, HUB_URL, SMALL, HubUser, started_with_workdir

pytestmark = pytest.mark.swarm
USER, UID = "alice", 10001
MiB = 1 << 20
WORK = f"jovial-files-test-{uuid.uuid4().hex[:8]}"  # below her home
HOST_WORK = FS_ROOT / "home" / USER / WORK
DAV = f"{HUB_URL}/user/{USER}/webdav"
STALL_SECONDS = 30  # a server buffering what it sends would read past a 2 GB limit in far less
GROWTH_BOUND = 256 * MiB  # what her server's processes may grow by while the reader waits


@pytest.fixture(scope="module")
def alice() -> Iterator[HubUser]:
    with started_with_workdir(USER, {**SMALL, "image": "astro"}, WORK) as user:
        yield user


@pytest.fixture(scope="module")
def bob() -> HubUser:
    """Another user of the hub, logged in with a token of his own (no server needed)."""
    return HubUser("bob")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def test_a_500_mib_upload_in_chunks_as_jupyterlab_makes_it(alice: HubUser) -> None:
    chunks, path, rng, digest = 500, f"{WORK}/big.bin", random.Random(7), hashlib.sha256()
    url = f"{HUB_URL}/user/{USER}/api/contents/{path}"
    for index in range(1, chunks + 1):
        chunk = rng.randbytes(MiB)
        digest.update(chunk)
        model = {"type": "file", "format": "base64", "name": "big.bin", "path": path,
                 "chunk": -1 if index == chunks else index, "content": base64.b64encode(chunk).decode()}
        reply = alice.api.put(url, json=model, timeout=60)
        assert reply.status_code in (200, 201), f"chunk {index}: HTTP {reply.status_code} {reply.text[:200]}"
    assert reply.json()["size"] == chunks * MiB
    on_host = HOST_WORK / "big.bin"
    assert on_host.stat().st_size == chunks * MiB and on_host.stat().st_uid == UID
    assert sha256_of(on_host) == digest.hexdigest()
    downloaded, size = hashlib.sha256(), 0
    with alice.api.get(f"{HUB_URL}/user/{USER}/files/{path}", stream=True, timeout=120) as reply:
        assert reply.status_code == 200
        for block in reply.iter_content(MiB):
            downloaded.update(block)
            size += len(block)
    assert (size, downloaded.hexdigest()) == (chunks * MiB, digest.hexdigest())


def listing(user: HubUser, path: str) -> dict[str, str]:
    """PROPFIND Depth 1 on a WebDAV collection: {href: content length or '' for collections}."""
    reply = user.api.request("PROPFIND", f"{DAV}/{path}", headers={"Depth": "1"}, timeout=30)
    assert reply.status_code == 207, reply.text
    ns = {"d": "DAV:"}
    return {
        r.findtext("d:href", namespaces=ns): r.findtext(".//d:getcontentlength", default="", namespaces=ns)
        for r in ElementTree.fromstring(reply.content).findall("d:response", ns)
    }


def test_webdav_put_get_list_move_delete_with_her_token(alice: HubUser) -> None:
    body = b"ra,dec\n10.68,41.27\n"
    assert alice.api.put(f"{DAV}/{WORK}/hello.csv", data=body, timeout=30).status_code == 201
    on_host = HOST_WORK / "hello.csv"
    assert on_host.read_bytes() == body and (on_host.stat().st_uid, on_host.stat().st_gid) == (UID, UID)
    reply = alice.api.get(f"{DAV}/{WORK}/hello.csv", timeout=30)
    assert (reply.status_code, reply.content) == (200, body)
    assert listing(alice, f"{WORK}/")[f"/user/{USER}/webdav/{WORK}/hello.csv"] == str(len(body))
    assert alice.api.request("MKCOL", f"{DAV}/{WORK}/sub", timeout=30).status_code == 201
    destination = {"Destination": f"{DAV}/{WORK}/sub/moved.csv"}
    assert alice.api.request("MOVE", f"{DAV}/{WORK}/hello.csv", headers=destination, timeout=30).status_code == 201
    assert (HOST_WORK / "sub" / "moved.csv").read_bytes() == body and not on_host.exists()
    assert alice.api.delete(f"{DAV}/{WORK}/sub", timeout=30).status_code == 204
    assert not (HOST_WORK / "sub").exists()
    # The header as rclone's bearer_token sends it.
    bearer = {"Authorization": f"Bearer {alice.token}", "Depth": "0"}
    assert requests.request("PROPFIND", f"{DAV}/{WORK}/", headers=bearer, timeout=30).status_code == 207


def test_webdav_with_curl_streams_a_file_over_512_mib(alice: HubUser, tmp_path: Path) -> None:
    size = 520 * MiB
    local = tmp_path / "cube.fits"
    with local.open("wb") as f:
        f.truncate(size)  # sparse: cheap to make, all of it still travels
    auth = ["-H", f"Authorization: token {alice.token}"]
    put = subprocess.run(["curl", "-sS", "-f", "-T", str(local), *auth, f"{DAV}/{WORK}/cube.fits"], capture_output=True, text=True)
    assert put.returncode == 0, put.stderr
    on_host = HOST_WORK / "cube.fits"
    assert on_host.stat().st_size == size and on_host.stat().st_uid == UID
    get = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{size_download}", *auth, f"{DAV}/{WORK}/cube.fits"],
                         capture_output=True, text=True)
    assert (get.returncode, get.stdout) == (0, str(size)), get.stderr
    propfind = subprocess.run(["curl", "-sS", "-f", "-X", "PROPFIND", "-H", "Depth: 1", *auth, f"{DAV}/{WORK}/"],
                              capture_output=True, text=True)
    assert propfind.returncode == 0 and f"/user/{USER}/webdav/{WORK}/cube.fits" in propfind.stdout, propfind.stderr


def test_another_users_token_or_none_cannot_reach_her_files(alice: HubUser, bob: HubUser) -> None:
    secret = HOST_WORK / "secret.txt"
    assert alice.api.put(f"{DAV}/{WORK}/secret.txt", data=b"alice only", timeout=30).status_code == 201
    anonymous = requests.Session()
    for who, session in (("bob", bob.api), ("nobody", anonymous)):
        attempts = {
            "GET": session.get(f"{DAV}/{WORK}/secret.txt", allow_redirects=False, timeout=30),
            "PROPFIND": session.request("PROPFIND", f"{DAV}/", headers={"Depth": "1"}, allow_redirects=False, timeout=30),
            "PUT": session.put(f"{DAV}/{WORK}/secret.txt", data=b"overwritten", allow_redirects=False, timeout=30),
            "PUT new": session.put(f"{DAV}/{WORK}/{who}.txt", data=b"dropped", allow_redirects=False, timeout=30),
            "DELETE": session.delete(f"{DAV}/{WORK}/secret.txt", allow_redirects=False, timeout=30),
        }
        for method, reply in attempts.items():
            assert reply.status_code == 403, f"{who} {method}: HTTP {reply.status_code} {reply.text[:200]}"
            assert b"alice only" not in reply.content
        assert not (HOST_WORK / f"{who}.txt").exists()
    assert secret.read_bytes() == b"alice only"


def her_container(client: docker.DockerClient) -> Container:
    """The container of her server's running task."""
    tasks = client.services.get(f"jupyter-{USER}").tasks({"desired-state": "running"})
    (task,) = [t for t in tasks if t["Status"]["State"] == "running"]
    return client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])


def resident_bytes(container: Container) -> int:
    """The resident memory of every process of the container (ps as the engine runs it, which needs
    the PID column to pick the container's processes; RSS in KiB)."""
    top = container.top(ps_args="-o pid,rss")
    rss = top["Titles"].index("RSS")
    return sum(int(row[rss]) for row in top["Processes"]) * 1024


def test_a_webdav_download_larger_than_her_servers_memory_streams_to_a_slow_reader(alice: HubUser) -> None:
    client = docker.from_env()
    container = her_container(client)
    limit = container.attrs["HostConfig"]["Memory"]
    assert limit > 0, "her server has no memory limit: the test would prove nothing"
    size = limit + 512 * MiB
    on_host = HOST_WORK / "larger-than-memory.fits"
    with on_host.open("wb") as f:
        f.truncate(size)  # sparse: cheap to make, all of it still travels
    os.chown(on_host, UID, UID)
    assert listing(alice, f"{WORK}/")[f"/user/{USER}/webdav/{WORK}/{on_host.name}"] == str(size)  # WsgiDAV has started
    before, peak, received = resident_bytes(container), 0, 0
    with alice.api.get(f"{DAV}/{WORK}/{on_host.name}", stream=True, timeout=120) as reply:
        assert reply.status_code == 200, reply.text[:300]
        blocks = reply.iter_content(MiB)
        received += len(next(blocks))
        stalled_until = time.monotonic() + STALL_SECONDS
        while time.monotonic() < stalled_until:  # she reads nothing; her server must wait for her
            try:
                peak = max(peak, resident_bytes(container))
            except docker.errors.APIError as gone:
                pytest.fail(f"her server died while she was not reading (buffered the download?): {gone}")
            time.sleep(0.5)
        for block in blocks:
            received += len(block)
    assert received == size
    assert peak - before < GROWTH_BOUND, f"her server grew by {(peak - before) / MiB:.0f} MiB while she was not reading"
    container.reload()
    assert (her_container(client).id, container.status) == (container.id, "running"), "her server was restarted"

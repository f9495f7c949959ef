"""The astronomy image (jovial/astro), chosen in a real spawn through the real hub and proxy.

alice starts her server with {"image": "astro"}; every check runs inside that server: in a
terminal (as her JupyterLab terminal would) or in a notebook kernel (as a notebook would). The
science stack imports, a FITS file is written and read back in her home, a matplotlib figure
renders to PNG, and both run as her uid with her home as working directory. Files the tests
make go to one directory of her home, removed at the end.
"""

import json
import time
import uuid
from collections.abc import Iterator

import docker
import pytest
import websocket

from tests.hub import FS_ROOT, HubUser, started_with_workdir

pytestmark = pytest.mark.swarm
USER, UID, GID = "alice", 10001, 10001
WORK = f"jovial-astro-test-{uuid.uuid4().hex[:8]}"  # below her home
STACK = "astropy numpy scipy matplotlib pandas pyvo astroquery photutils regions reproject h5py ipywidgets ipympl"


@pytest.fixture(scope="module")
def alice() -> Iterator[HubUser]:
    with started_with_workdir(USER, {"image": "astro"}, WORK) as user:
        yield user


def python(user: HubUser, script: str, timeout: float = 120) -> tuple[int, str]:
    """Run a Python script in a terminal of the user's server, in the test's directory of her home."""
    return user.run_python(script, cwd=f"~/{WORK}", timeout=timeout)


def run_in_kernel(user: HubUser, code: str, timeout: float = 120) -> str:
    """Start a kernel in the user's server, run `code` in it, return what it printed; shut it down."""
    reply = user.api.post(f"{user.hub_url}/user/{user.name}/api/kernels", json={"name": "python3"}, timeout=30)
    reply.raise_for_status()
    kernel = reply.json()["id"]
    ws_url = user.hub_url.replace("http", "ws", 1) + f"/user/{user.name}/api/kernels/{kernel}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {user.token}"], timeout=timeout)
    msg_id, output, deadline = uuid.uuid4().hex, "", time.monotonic() + timeout
    try:
        header = {"msg_id": msg_id, "msg_type": "execute_request", "session": uuid.uuid4().hex, "username": "", "version": "5.3"}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
        ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}))
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "stream":
                output += message["content"]["text"]
            elif kind == "error":
                raise AssertionError("\n".join(message["content"]["traceback"]))
            elif kind == "execute_reply":
                return output
        raise TimeoutError(f"the kernel did not answer in {timeout} s; output so far: {output!r}")
    finally:
        ws.close()
        user.api.delete(f"{user.hub_url}/user/{user.name}/api/kernels/{kernel}", timeout=30)


def test_the_server_runs_the_astro_image(alice: HubUser) -> None:
    client = docker.from_env()
    astro_id = client.images.get("jovial/astro:dev").id
    spec = client.services.get(f"jupyter-{USER}").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Image"] == astro_id


def test_the_astronomy_stack_imports(alice: HubUser) -> None:
    # A terminal is a login shell (/etc/profile resets PATH): python must still be the image's.
    assert alice.run_in_terminal("command -v python pip jupyter") == (
        0, "/opt/jovial/bin/python\n/opt/jovial/bin/pip\n/opt/jovial/bin/jupyter"
    )
    status, output = python(
        alice, f"import {', '.join(STACK.split())}\nprint('imported', astropy.__version__, numpy.__version__)"
    )
    assert status == 0 and output.startswith("imported "), output
    status, output = alice.run_in_terminal("git --version && python -c 'import aiodns' 2>&1")
    assert status != 0 and output.startswith("git version") and "No module named 'aiodns'" in output, output


def test_a_fits_file_is_written_and_read_in_the_home(alice: HubUser) -> None:
    status, output = python(alice, """
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
image = np.arange(100, dtype=np.float32).reshape(10, 10)
header = WCS({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 10.68, "CRVAL2": 41.27}).to_header()
fits.PrimaryHDU(image, header=header).writeto("small.fits", overwrite=True)
with fits.open("small.fits") as hdul:
    print("sum", float(hdul[0].data.sum()), hdul[0].header["CTYPE1"])
""")
    assert (status, output) == (0, "sum 4950.0 RA---TAN")
    written = FS_ROOT / "home" / USER / WORK / "small.fits"
    assert written.read_bytes()[:9] == b"SIMPLE  ="
    assert (written.stat().st_uid, written.stat().st_gid) == (UID, GID)


def test_a_plot_renders_to_png(alice: HubUser) -> None:
    status, output = python(alice, """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
figure, axes = plt.subplots()
axes.imshow(np.random.default_rng(1).normal(size=(32, 32)), origin="lower")
figure.savefig("plot.png", dpi=50)
print("backend", matplotlib.get_backend().lower())
""")
    assert (status, output) == (0, "backend agg")
    png = FS_ROOT / "home" / USER / WORK / "plot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert png.stat().st_uid == UID


def test_terminal_and_kernel_run_as_her_in_her_home(alice: HubUser) -> None:
    assert alice.run_in_terminal("id -u; id -g; pwd") == (0, f"{UID}\n{GID}\n/home/{USER}")
    output = run_in_kernel(alice, "import os; print(os.getuid(), os.getgid(), os.getcwd(), os.environ['HOME'])")
    assert output.split() == [str(UID), str(GID), f"/home/{USER}", f"/home/{USER}"]
    # The kernel really is the astro image's: the science stack is importable from a notebook.
    assert run_in_kernel(alice, "import photutils, reproject; print('ok')").strip() == "ok"

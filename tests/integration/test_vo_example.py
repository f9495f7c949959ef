"""The astronomy image's example notebook, run headless in a real server against a stand-in VO service.

The machine has no internet, so a Swarm service on the stack's overlay network runs
tests/vo_standin.py, in the jovial/astro image: a cone search (SCS) and a TAP service over eight
fixed sources around the demo image. alice starts her server with {"image": "astro"} through
the real hub. In a terminal of her server, she copies /opt/jovial/examples/first-look.ipynb into
her home, as the README tells her to, and `jupyter nbconvert --execute` runs it with the
notebook's service variables pointing at the stand-in. The test then reads the executed notebook
from her home and checks each step's output: the FITS header, the WCS centre and radius, the
sources the cone search and the TAP query returned, and the two plots. The stand-in really
selects by angular distance, magnitude and order, so a wrong centre, radius, cut or sort gives
other sources, and a notebook that did nothing fails the test. The service, its config and her
test directory are removed afterwards, also when a test fails.
"""

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.hub import FS_ROOT, HubUser, started_with_workdir, wait_for_no_containers_labelled
from tests.integration.conftest import remove_objects_named

pytestmark = pytest.mark.swarm
USER = "alice"
WORK = f"jovial-vo-test-{uuid.uuid4().hex[:8]}"  # below her home
STANDIN = "jovial-test-vo-standin"  # service name = DNS name on the overlay network
STANDIN_SCRIPT = Path(__file__).parent.parent / "vo_standin.py"
STANDIN_PATH = "/opt/vo-standin/vo_standin.py"  # where the config appears in its container
PORT = 8080
SCS_URL = f"http://{STANDIN}:{PORT}/scs"
TAP_URL = f"http://{STANDIN}:{PORT}/tap"
NOTEBOOK = "/opt/jovial/examples/first-look.ipynb"


@pytest.fixture(scope="module")
def standin() -> Iterator[None]:
    """The VO stand-in as a service on the overlay network: not root, no capabilities, no new
    privileges, tini as its init (the image's entrypoint), the script as a Docker config."""
    client = docker.from_env()
    remove_objects_named(STANDIN)  # what a killed run may have left
    labels = {"jovial.object": STANDIN}
    try:
        config = client.configs.create(name=f"{STANDIN}-script", data=STANDIN_SCRIPT.read_bytes(), labels=labels)
        client.services.create(
            client.images.get("jovial/astro:dev").id,  # by ID: Swarm asks no registry
            args=["setpriv", "--no-new-privs", "python", STANDIN_PATH, str(PORT)],
            name=STANDIN,
            labels=labels,
            container_labels=labels,
            user="65534:65534",
            cap_drop=["ALL"],
            configs=[docker.types.ConfigReference(config.id, config.name, filename=STANDIN_PATH, mode=0o444)],
            networks=[os.environ.get("JOVIAL_NETWORK", "jovial")],
            endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
        yield
    finally:
        remove_objects_named(STANDIN)
        wait_for_no_containers_labelled(client, f"jovial.object={STANDIN}")


@pytest.fixture(scope="module")
def alice() -> Iterator[HubUser]:
    with started_with_workdir(USER, {"image": "astro"}, WORK) as user:
        yield user


def python_in_server(user: HubUser, script: str) -> tuple[int, str]:
    return user.run_python(script, cwd=f"~/{WORK}", timeout=90)


@pytest.fixture(scope="module")
def reachable(standin: None, alice: HubUser) -> HubUser:
    """alice, once the stand-in answers inside her server (over the overlay network, as the
    notebook will ask it)."""
    status, output = python_in_server(alice, f"""
import time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen("{SCS_URL}?RA=0&DEC=0&SR=0", timeout=5).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
print("answering")
""")
    assert (status, output) == (0, "answering"), output
    return alice


@pytest.fixture(scope="module")
def executed(reachable: HubUser) -> dict[str, list[dict]]:
    """The notebook copied to her home and run there headless: the outputs of each code cell, by
    the cell's id."""
    status, output = reachable.run_in_terminal(
        f"cd ~/{WORK} && cp {NOTEBOOK} . && JOVIAL_EXAMPLE_SCS_URL={SCS_URL} JOVIAL_EXAMPLE_TAP_URL={TAP_URL} "
        "jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=120 first-look.ipynb --output executed",
        timeout=300,
    )
    assert status == 0, output
    notebook = json.loads((FS_ROOT / "home" / USER / WORK / "executed.ipynb").read_text())
    return {cell["id"]: cell["outputs"] for cell in notebook["cells"] if cell["cell_type"] == "code"}


def text_of(outputs: list[dict]) -> str:
    """Everything a cell printed (streams) and showed as text (its results)."""
    parts = [
        "".join(output["text"]) if output["output_type"] == "stream" else "".join(output["data"].get("text/plain", ""))
        for output in outputs
        if output["output_type"] in ("stream", "execute_result", "display_data")
    ]
    return "\n".join(parts)


def test_every_cell_ran_without_an_error(executed: dict[str, list[dict]]) -> None:
    assert list(executed) == ["settings", "open-fits", "wcs", "plot", "cone-search", "tap-query", "overlay"]
    assert not [cell for cell, outputs in executed.items() if any(o["output_type"] == "error" for o in outputs)]
    assert f"cone search: {SCS_URL}" in text_of(executed["settings"])
    assert f"TAP:         {TAP_URL}" in text_of(executed["settings"])


def test_it_reads_the_image_from_the_data_collection(executed: dict[str, list[dict]]) -> None:
    text = text_of(executed["open-fits"])
    assert "Filename: /data/demo/m31-demo.fits" in text
    # The pixels were read: the Gaussian's peak is 100 + 1000 * exp(-0.01).
    assert "M31 demo: 64 x 64 pixels in adu, from 100.0 to 1090.0 (median 100.0)" in text
    for card in ("OBJECT  = 'M31 demo'", "CTYPE1  = 'RA---TAN'", "CRVAL1  =              10.6847",
                 "CRVAL2  =               41.269", "CDELT2  =            0.0002778"):
        assert card in text, card


def test_it_finds_the_centre_and_radius_from_the_wcs(executed: dict[str, list[dict]]) -> None:
    text = text_of(executed["wcs"])
    assert "centre: RA 10.68470 deg, Dec +41.26900 deg (00h42m44.3s +41d16m08.4s)" in text
    assert "pixel scale 1.000 arcsec; the circle covering the image has a radius of 45.26 arcsec" in text


def test_the_cone_search_returns_the_sources_in_that_circle(executed: dict[str, list[dict]]) -> None:
    # Of the stand-in's eight sources, five are within 45.26": 106 (47.0") and 107 (50.0") are
    # just outside, 108 half a degree away. The stand-in returns the nearest first.
    text = text_of(executed["cone-search"])
    assert "The cone search found 5 sources within 45.26 arcsec: 101, 102, 105, 103, 104" in text
    assert "<Table length=5>" in text and "43.5" in text  # with the separations the notebook added


def test_the_tap_query_keeps_the_bright_ones_brightest_first(executed: dict[str, list[dict]]) -> None:
    # 103 (G 19.63) and 105 (G 20.35) are in the circle but fainter than G = 19.
    text = text_of(executed["tap-query"])
    assert "CIRCLE('ICRS', 10.684700, 41.269000, 0.012572)" in text
    assert "TAP found 3 sources brighter than G = 19.0, brightest first: 101, 102, 104" in text


def test_both_plots_are_drawn(executed: dict[str, list[dict]]) -> None:
    for cell in ("plot", "overlay"):
        images = [o["data"]["image/png"] for o in executed[cell] if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell
        png = base64.b64decode(images[0])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, cell


def test_the_standin_refuses_what_it_does_not_understand(reachable: HubUser) -> None:
    # Its answers above are not a default: another query gets TAP's error, through pyvo.
    status, output = python_in_server(reachable, f"""
import pyvo
try:
    pyvo.dal.TAPService("{TAP_URL}").run_sync("SELECT source_id FROM gaiadr3.gaia_source WHERE parallax > 1")
except pyvo.dal.DALQueryError as error:
    print("refused:", error)
""")
    refusal = "refused: Unknown column 'parallax'; gaiadr3.gaia_source has source_id, ra, dec, phot_g_mean_mag."
    assert (status, output) == (0, refusal), output

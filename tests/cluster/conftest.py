"""The 3-node swarm of `swarm/cluster` (1 manager + 2 workers, each a Docker engine of its own in a
network namespace of its own, Jovial deployed on it), for the tests in this folder.

The first test of this folder brings it up (about a minute and a half: the images are copied
into the nodes) unless one is up already, and the last takes it down again if it made it, so
that the other tests do not share the machine's two cores with three idle engines.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from tests.hub import HubUser

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "swarm" / "cluster"
ENV_FILE = Path(os.environ.get("JOVIAL_STATE_DIR", "/var/lib/jovial")) / "cluster" / "env"


@dataclass(frozen=True)
class Cluster:
    """The facts `swarm/cluster up` printed, and the node faults of the script."""

    facts: dict[str, str]

    @property
    def url(self) -> str:
        return self.facts["JOVIAL_CLUSTER_URL"].rstrip("/")

    @property
    def workers(self) -> list[str]:
        return self.facts["JOVIAL_CLUSTER_WORKERS"].split(",")

    @property
    def stack(self) -> str:
        return self.facts["JOVIAL_CLUSTER_STACK"]

    def manager(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.facts["JOVIAL_CLUSTER_DOCKER_HOST"], version="auto", timeout=30)

    def node(self, name: str) -> docker.DockerClient:
        """The node's own engine (reachable from the host even when the node is cut off)."""
        return docker.DockerClient(base_url=self.facts[f"JOVIAL_CLUSTER_{name.upper()}_DOCKER_HOST"], version="auto", timeout=10)

    def user(self, name: str) -> HubUser:
        password = Path(self.facts["JOVIAL_CLUSTER_DEMO_PASSWORD_FILE"]).read_text().strip()
        return HubUser(name, password, hub_url=self.url)

    def fault(self, command: str, node: str) -> float:
        """Run `swarm/cluster COMMAND NODE`; return the monotonic time at which it had done it."""
        subprocess.run([str(SCRIPT), command, node], check=True, capture_output=True, text=True, timeout=180)
        return time.monotonic()


def facts_of(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    was_up = ENV_FILE.exists()
    up = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        if not was_up:  # a cluster someone else brought up is theirs to take down
            subprocess.run([str(SCRIPT), "down"], capture_output=True, timeout=300)
        pytest.fail(f"swarm/cluster up failed:\n{up.stderr[-3000:]}")
    try:
        yield Cluster(facts_of(up.stdout))
    finally:
        if not was_up:
            down = subprocess.run([str(SCRIPT), "down"], capture_output=True, text=True, timeout=300)
            assert down.returncode == 0, f"swarm/cluster down failed:\n{down.stderr[-3000:]}"

"""What a burst may leave behind on the swarm, and waiting until it is gone."""

import time

import docker

SERVICE_PREFIXES = ("jupyter-student", "stock-student", "jovial-floor-")
GONE_TIMEOUT = 120.0


def leftovers(client: docker.DockerClient) -> list[str]:
    """Benchmark services, containers and server configs still there."""
    # The low-level lists: one call each, and no inspect of containers that may vanish meanwhile.
    names = [s["Spec"]["Name"] for s in client.api.services()]
    names += [c["Names"][0].lstrip("/") for c in client.api.containers(all=True)]
    found = [n for n in names if n.startswith(SERVICE_PREFIXES)]
    configs = client.api.configs(filters={"label": "jovial.object"})
    return found + [c["Spec"]["Name"] for c in configs if "student" in c["Spec"]["Labels"]["jovial.object"]]


def wait_until_gone(client: docker.DockerClient) -> list[str]:
    """Wait until nothing of the burst is left (at most GONE_TIMEOUT); return what is still there."""
    deadline = time.monotonic() + GONE_TIMEOUT
    while (left := leftovers(client)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left

"""The floor: the same single-user image as a bare Swarm service, with no spawner and no hub.

N services are created at once with the settings both spawners give their servers (image,
network, placement on the filesystem label, CPU and memory limits, DNS round-robin); each one's
time runs from its create call to the first HTTP answer of its port. One task list a few times a
second finds the tasks' addresses (as a spawner's watcher would); the ports are probed directly.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker
import requests
from docker.types import ContainerSpec, EndpointSpec, NetworkAttachmentConfig, Placement, Resources, TaskTemplate

from .contenders import BurstResult
from .leftovers import wait_until_gone

FLOOR_LABEL = "jovial.benchmark"
PORT = 8888
TIMEOUT = 300.0
LIST_INTERVAL = 0.2
PROBE_INTERVAL = 0.05


@dataclass(frozen=True)
class FloorSettings:
    image: str
    network: str
    constraints: tuple[str, ...]
    cpu_limit: float
    mem_limit: int
    hub_api_url: str


def service_args(settings: FloorSettings, name: str) -> dict:
    """create_service arguments for a bare server called `name` (a non-root uid, as the spawners use)."""
    prefix = f"/user/{name}/"
    env = {
        "HOME": "/tmp",
        "JUPYTERHUB_API_TOKEN": "floor-has-no-hub",
        "JUPYTERHUB_API_URL": settings.hub_api_url,
        "JUPYTERHUB_USER": name,
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{name}",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{PORT}{prefix}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
    }
    return {
        "name": name,
        "labels": {FLOOR_LABEL: "floor"},
        "endpoint_spec": EndpointSpec(mode="dnsrr"),
        "task_template": TaskTemplate(
            container_spec=ContainerSpec(
                image=settings.image,
                command=["jupyterhub-singleuser"],
                env=env,
                user="1000:1000",
                labels={FLOOR_LABEL: "floor"},
            ),
            resources=Resources(cpu_limit=int(settings.cpu_limit * 1e9), mem_limit=settings.mem_limit),
            placement=Placement(constraints=list(settings.constraints)),
            networks=[NetworkAttachmentConfig(target=settings.network)],
        ),
    }


class TaskAddresses:
    """The overlay address of each floor service's running task, from one task list at a time."""

    def __init__(self, client: docker.DockerClient, network_id: str) -> None:
        self._client = client
        self._network_id = network_id
        self._addresses: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def get(self, service_id: str) -> str | None:
        with self._lock:
            return self._addresses.get(service_id)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(LIST_INTERVAL):
            found = {}
            for task in self._client.api.tasks(filters={"desired-state": "running"}):
                if task["Status"]["State"] != "running":
                    continue
                for attachment in task.get("NetworksAttachments", []):
                    if attachment["Network"]["ID"] == self._network_id and attachment.get("Addresses"):
                        found[task["ServiceID"]] = attachment["Addresses"][0].split("/")[0]
            with self._lock:
                self._addresses = found


def answers(address: str) -> bool:
    try:
        requests.get(f"http://{address}:{PORT}/", timeout=1)
        return True
    except requests.RequestException:
        return False


def timed_floor_start(client: docker.DockerClient, settings: FloorSettings, name: str, addresses: TaskAddresses) -> float | str:
    started = time.monotonic()
    service_id = client.api.create_service(**service_args(settings, name))["ID"]
    while time.monotonic() - started < TIMEOUT:
        address = addresses.get(service_id)
        if address and answers(address):
            return time.monotonic() - started
        time.sleep(PROBE_INTERVAL)
    return f"{name}: no answer within {TIMEOUT:.0f} s"


def remove_floor_services(client: docker.DockerClient) -> None:
    for service in client.services.list(filters={"label": f"{FLOOR_LABEL}=floor"}):
        service.remove()


def floor_burst(client: docker.DockerClient, settings: FloorSettings, n: int) -> BurstResult:
    result = BurstResult(contender="floor", n=n)
    addresses = TaskAddresses(client, client.networks.get(settings.network).id)
    try:
        names = [f"jovial-floor-{i:02d}" for i in range(1, n + 1)]
        with ThreadPoolExecutor(n) as pool:
            outcomes = list(pool.map(lambda name: timed_floor_start(client, settings, name, addresses), names))
    finally:
        addresses.close()
    result.ready_seconds = [o for o in outcomes if isinstance(o, float)]
    result.failures = [o for o in outcomes if isinstance(o, str)]
    stopping = time.monotonic()
    remove_floor_services(client)
    result.left_behind = wait_until_gone(client)
    result.stop_seconds = time.monotonic() - stopping
    return result

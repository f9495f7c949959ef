"""What a hub costs, read from outside it: its container's CPU time (Docker's stats) and the
number of Docker API calls it made (the request counter of its docker-proxy, HAProxy's `show stat`)."""

import csv
import io

import docker

# HAProxy's runtime API listens on the proxy container's loopback only (images/docker-proxy/haproxy.cfg).
SHOW_STAT = ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9999 && echo 'show stat' >&3 && cat <&3"]


def stack_container(client: docker.DockerClient, service: str) -> docker.models.containers.Container:
    """The one running container of a stack service (e.g. jovial_hub)."""
    containers = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    if len(containers) != 1:
        raise RuntimeError(f"expected one running container of {service}, found {len(containers)}")
    return containers[0]


def cpu_seconds(client: docker.DockerClient, service: str) -> float:
    """CPU time (user + system) the service's container has used since it started."""
    stats = client.api.stats(stack_container(client, service).id, stream=False, one_shot=True)
    return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def api_requests(client: docker.DockerClient, docker_proxy_service: str) -> int:
    """Every request the docker-proxy has received since it started (allowed or refused)."""
    result = stack_container(client, docker_proxy_service).exec_run(SHOW_STAT)
    if result.exit_code != 0:
        raise RuntimeError(f"HAProxy's stats from {docker_proxy_service}: {result.output.decode(errors='replace')}")
    rows = csv.DictReader(io.StringIO(result.output.decode().lstrip("# ")))
    for row in rows:
        if row["pxname"] == "docker-api" and row["svname"] == "FRONTEND":
            return int(row["req_tot"])
    raise RuntimeError(f"no docker-api frontend in the stats of {docker_proxy_service}")

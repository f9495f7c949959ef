"""What a hub costs, read from outside it: its container's CPU time (Docker's stats) and the
number of Docker API calls it made (the request counter of its docker-proxy)."""

import json

import docker

# The docker-proxy serves its counters on its container's loopback only
# (images/docker-proxy/jovial_docker_proxy/server.py): asked from inside that container.
COUNTERS = ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9999 && printf 'GET /counters HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"]


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
    result = stack_container(client, docker_proxy_service).exec_run(COUNTERS)
    head, _, body = result.output.decode(errors="replace").partition("\r\n\r\n")
    if result.exit_code != 0 or head.split("\r\n", 1)[0].split()[1:2] != ["200"]:
        raise RuntimeError(f"the counters of {docker_proxy_service}: {result.output.decode(errors='replace')[:300]}")
    return int(json.loads(body)["requests"])

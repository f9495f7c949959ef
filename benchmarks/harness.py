"""The benchmark run: alternating Jovial, stock SwarmSpawner and the bare-service floor.

`python -m benchmarks.harness --out FILE` inside the driver container that benchmarks/run starts
(on both stacks' overlay networks, with the Docker socket). N = 1 is repeated; then one burst of
each size. The order of the contenders rotates from round to round, so none always goes first.
"""

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from tests.hub import HubUser

from .contenders import BurstResult, HubContender
from .floor import FloorSettings, floor_burst
from .hub_burst import hub_burst
from .report import as_json, table

HUBS = {
    "jovial": HubContender("jovial", "http://jovial_proxy:8000", "jovial_hub", "jovial_docker-proxy"),
    "stock": HubContender("stock", "http://jovial-stock_proxy:8000", "jovial-stock_hub", "jovial-stock_docker-proxy"),
}
def hub_env(client: docker.DockerClient, service: str) -> dict[str, str]:
    spec = client.services.get(service).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    return dict(item.split("=", 1) for item in spec.get("Env", []))


def floor_settings(client: docker.DockerClient) -> FloorSettings:
    """The settings Jovial's hub gives its servers, for the bare services."""
    env = hub_env(client, HUBS["jovial"].hub_service)
    mem = env.get("JOVIAL_MEM_LIMIT", "2G")
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    mem_bytes = int(float(mem[:-1]) * units[mem[-1].upper()]) if mem[-1].upper() in units else int(mem)
    return FloorSettings(
        image=env["JOVIAL_SINGLEUSER_IMAGE"],
        network=env.get("JOVIAL_NETWORK", "jovial"),
        constraints=(f"node.labels.{env.get('JOVIAL_FS_LABEL', 'jovial.fs')}=={env.get('JOVIAL_FS_LABEL_VALUE', 'lustre')}",),
        cpu_limit=float(env.get("JOVIAL_CPU_LIMIT", "1")),
        mem_limit=mem_bytes,
        hub_api_url="http://hub:8081/hub/api",
    )


def log_in(hub: HubContender, names: Sequence[str]) -> list[HubUser]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda name: HubUser(name, hub_url=hub.url), names))


def rotated(items: Sequence[str], by: int) -> list[str]:
    return [items[(i + by) % len(items)] for i in range(len(items))]


def machine(client: docker.DockerClient) -> dict[str, object]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "docker": client.version()["Version"],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="how many times N = 1 is run per contender")
    parser.add_argument("--sizes", default="10,30,50", help="burst sizes, comma-separated")
    parser.add_argument("--window", type=float, default=15.0,
                        help="seconds of idle window with N running (hubs), after the smallest and the largest burst; "
                        "its Docker API calls are reported per 30 s, the hubs' poll interval")
    parser.add_argument("--contenders", default="jovial,stock,floor", help="which of jovial, stock, floor to run")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",") if n]
    client = docker.from_env()
    names = [f"student{i:02d}" for i in range(1, max([1, *sizes]) + 1)]
    users = {name: log_in(hub, names) for name, hub in HUBS.items()}
    settings = floor_settings(client)
    bursts: dict[str, Callable[[int, float], BurstResult]] = {
        "floor": lambda n, window: floor_burst(client, settings, n),
        **{name: (lambda n, window, name=name: hub_burst(client, HUBS[name], users[name][:n], window)) for name in HUBS},
    }
    # Two windows show whether the calls per poll interval grow with N; more would only add time.
    windowed = {min(sizes), max(sizes)} if sizes else set()
    schedule = [(1, 0.0)] * args.repeat + [(n, args.window if n in windowed else 0.0) for n in sizes]
    results: list[BurstResult] = []
    for round_number, (n, window) in enumerate(schedule):
        for contender in rotated(args.contenders.split(","), round_number):
            started = time.monotonic()
            result = bursts[contender](n, window)
            results.append(result)
            print(
                f"[benchmark] {contender:6} N={n:2}: {len(result.ready_seconds)} ready, {len(result.failures)} failed "
                f"({time.monotonic() - started:.0f} s){'; ' + result.failures[0] if result.failures else ''}",
                file=sys.stderr,
                flush=True,
            )
    args.out.write_text(as_json(results, machine(client)))
    print(table(results))
    return 0 if not any(r.failures or r.left_behind for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

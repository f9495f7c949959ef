"""Which orchestrator runs the servers (one setting), and what each one cannot honour.

Every JovialSpawner setting means the same on Swarm and on Kubernetes, except those below: a
hub configured with one of them for the orchestrator that lacks it refuses to start, naming the
setting, the orchestrator and what to use instead (JovialSpawner.check_config). So are node
resources (`generic_resources`, per group, user or profile) that Kubernetes has no name for.
"""

from collections.abc import Iterable, Iterator, Mapping
from importlib.util import find_spec
from typing import Any

ORCHESTRATORS = {"swarm": "Docker Swarm", "kubernetes": "Kubernetes"}
DEFAULT_EXTENDED_RESOURCES = {"NVIDIA-GPU": "nvidia.com/gpu"}

_DOCKER_CLIENT = "nothing: the hub reaches Kubernetes with its service account (or KUBECONFIG)"
LACKING: dict[str, dict[str, str]] = {
    "swarm": {
        "kubernetes_namespace": "nothing: Swarm services have no namespace",
        "kubernetes_extended_resources": "generic_resources, by the names the nodes advertise",
    },
    "kubernetes": {
        "network_name": "nothing: pods share the cluster's pod network (restrict it with a NetworkPolicy)",
        "watch_interval": "nothing: the API server tells the Kubernetes watcher of every change as it happens",
        **{name: _DOCKER_CLIENT for name in (
            "client_kwargs", "tls_config", "tls", "tls_verify", "tls_ca", "tls_cert", "tls_key",
            "tls_assert_hostname", "use_docker_client_env",
        )},
    },
}


def orchestrator_of(settings: Mapping[str, Any]) -> str:
    """The configured orchestrator ('swarm' unless set); a clear error for an unknown one."""
    name: str = settings.get("orchestrator", "swarm")
    if name not in ORCHESTRATORS:
        raise ValueError(f"JovialSpawner.orchestrator must be one of {sorted(ORCHESTRATORS)}, not {name!r}.")
    return name


def _generic_names(settings: Mapping[str, Any]) -> Iterator[str]:
    layers = [settings, *settings.get("group_settings", {}).values(), *settings.get("user_settings", {}).values()]
    layers += list(settings.get("profiles", []))
    for layer in layers:
        resources = layer.get("generic_resources") if isinstance(layer, Mapping) else None
        if isinstance(resources, Mapping):  # a callable is checked when it is called, at spawn
            yield from resources


def refusals(orchestrator: str, set_names: Iterable[tuple[str, str]], settings: Mapping[str, Any]) -> dict[str, str]:
    """What `orchestrator` cannot honour: {qualified setting name or problem: what to use instead}.

    `set_names`: (section, name) of each setting the config sets, e.g. ('SwarmSpawner', 'tls');
    `settings`: the merged settings."""
    lacking = LACKING[orchestrator]
    found = {f"{section}.{name}": lacking[name] for section, name in set_names if name in lacking}
    if orchestrator == "kubernetes" and find_spec("kubernetes_asyncio") is None:
        found["orchestrator = 'kubernetes'"] = "pip install 'jovial[kubernetes]' in the hub's image first"
    if orchestrator == "kubernetes":
        known = settings.get("kubernetes_extended_resources", DEFAULT_EXTENDED_RESOURCES)
        for name in sorted(set(_generic_names(settings)) - set(known)):
            found[f"generic_resources {name!r}"] = (
                f"a Kubernetes name for it in kubernetes_extended_resources (e.g. {name!r}: 'nvidia.com/gpu')"
            )
    return found

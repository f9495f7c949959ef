"""An in-memory stand-in for docker.APIClient, enough for SwarmBackend and its watcher: services,
configs and tasks held in dicts, label filters, NotFound for what is not there, a call log, and an
events stream that stays open (and empty) until it is closed. NOT an engine: nothing runs."""

import itertools
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from docker.errors import NotFound

from jovial.spec import ServerOwner

NETWORK = {"ID": "net-id", "Spec": {"Name": "jovial"}}


def _labelled(obj: Mapping[str, Any], filters: Mapping[str, str] | None) -> bool:
    wanted = (filters or {}).get("label")
    if wanted is None:
        return True
    key, _, value = wanted.partition("=")
    return (obj["Spec"].get("Labels") or {}).get(key) == value


def labels_of(owner: ServerOwner, name: str) -> dict[str, str]:
    """The labels Jovial gives every object of `owner`'s server called `name`."""
    return {"jovial.managed": "true", "jovial.object": name, "jovial.user": owner.username, "jovial.server": owner.server_name}


class _QuietStream:
    """An events stream with nothing to say, open until closed (as an idle engine's)."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        self._closed.wait()
        return iter(())

    def close(self) -> None:
        self._closed.set()


class FakeDocker:
    """Services, configs and tasks by ID; `calls` lists (method, argument) of every write and inspect."""

    def __init__(self) -> None:
        self.services_by_id: dict[str, dict[str, Any]] = {}
        self.configs_by_id: dict[str, dict[str, Any]] = {}
        self.tasks_by_service: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self._ids = (f"id{n:04d}" for n in itertools.count(1))

    # --- what tests use to set the scene --------------------------------------------------------
    def add_service(self, name: str, labels: Mapping[str, str], config_ids: tuple[str, ...] = (), running_at: str = "10.0.1.5") -> str:
        """A service (made by anyone) with one running task at `running_at` on the users' network."""
        service_id = next(self._ids)
        configs = [{"ConfigID": c, "ConfigName": self.configs_by_id[c]["Spec"]["Name"]} for c in config_ids]
        self.services_by_id[service_id] = {
            "ID": service_id,
            "Spec": {"Name": name, "Labels": dict(labels), "TaskTemplate": {
                "ContainerSpec": {"Configs": configs}, "Networks": [{"Target": "net-id"}],
                "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3}}},
        }
        self.tasks_by_service[service_id] = [{
            "ServiceID": service_id, "NodeID": "n1", "DesiredState": "running", "CreatedAt": "2026-12-03T09:00:00.000000000Z",
            "Status": {"State": "running"}, "NetworksAttachments": [{"Network": NETWORK, "Addresses": [f"{running_at}/24"]}],
        }]
        return service_id

    def add_config(self, name: str, labels: Mapping[str, str]) -> str:
        config_id = next(self._ids)
        self.configs_by_id[config_id] = {"ID": config_id, "Spec": {"Name": name, "Labels": dict(labels)}}
        return config_id

    def service_names(self) -> list[str]:
        return sorted(s["Spec"]["Name"] for s in self.services_by_id.values())

    def config_names(self) -> list[str]:
        return sorted(c["Spec"]["Name"] for c in self.configs_by_id.values())

    # --- the APIClient calls SwarmBackend makes -----------------------------------------------
    def create_config(self, name: str, data: bytes, labels: Mapping[str, str]) -> dict[str, str]:
        self.calls.append(("create_config", name))
        return {"ID": self.add_config(name, labels)}

    def create_service(self, name: str, task_template: Mapping[str, Any], labels: Mapping[str, str], **_: Any) -> dict[str, str]:
        self.calls.append(("create_service", name))
        if any(s["Spec"]["Name"] == name for s in self.services_by_id.values()):
            raise NotFound("conflict")  # stands for the engine's 409; never reached by these tests
        return {"ID": self.add_service(name, labels, tuple(c["ConfigID"] for c in task_template["ContainerSpec"]["Configs"]))}

    def inspect_service(self, name_or_id: str) -> dict[str, Any]:
        self.calls.append(("inspect_service", name_or_id))
        for service in self.services_by_id.values():
            if name_or_id in (service["ID"], service["Spec"]["Name"]):
                return service
        raise NotFound(f"service {name_or_id} not found")

    def remove_service(self, service_id: str) -> None:
        self.calls.append(("remove_service", service_id))
        if self.services_by_id.pop(service_id, None) is None:
            raise NotFound(f"service {service_id} not found")
        self.tasks_by_service.pop(service_id, None)

    def configs(self, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return [c for c in self.configs_by_id.values() if _labelled(c, filters)]

    def remove_config(self, config_id: str) -> None:
        self.calls.append(("remove_config", config_id))
        if self.configs_by_id.pop(config_id, None) is None:
            raise NotFound(f"config {config_id} not found")

    def services(self, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return [s for s in self.services_by_id.values() if _labelled(s, filters)]

    def tasks(self, filters: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        return [t for sid, tasks in self.tasks_by_service.items() if _labelled(self.services_by_id[sid], filters) for t in tasks]

    def nodes(self) -> list[dict[str, Any]]:
        return [{"ID": "n1", "Description": {"Hostname": "vm"}}]

    def events(self, decode: bool, filters: Mapping[str, Any]) -> _QuietStream:
        return _QuietStream()

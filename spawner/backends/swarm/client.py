"""The Swarm backend's I/O: create, wait for, inspect and remove the objects of a user server.

Docker SDK calls run in worker threads, never on the hub's event loop. Everything made for a
server carries the `jovial.object=<name>` label, so removal finds it all, also after a crash.
"""

import asyncio
import time
from typing import Any

import docker
from docker.errors import APIError, NotFound

from ...errors import LaunchError
from ...spec import OBJECT_LABEL, ServerSpec
from .. import ProgressReport, ServerStatus
from .builder import config_args, service_args
from .tasks import ALIVE_STATES, newest, view_tasks

CHECK_INTERVAL = 0.2
LOG_LINES = 10


class SwarmBackend:
    """Runs each user server as one Docker Swarm service (plus its passwd/group configs)."""

    def __init__(self, client: docker.APIClient) -> None:
        self.client = client
        self._node_names: dict[str, str] = {}

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)

    async def launch(self, spec: ServerSpec) -> str:
        made: list[str] = []
        try:
            for config in config_args(spec):
                made.append((await self._call("create_config", config.name, config.data, labels=config.labels))["ID"])
            ids = dict(zip((c.name for c in config_args(spec)), made))
            service = await self._call("create_service", **service_args(spec, ids))
        except APIError as e:
            for config_id in made:
                await self._remove_quietly("remove_config", config_id)
            raise LaunchError(f"The cluster refused to create your server: {e.explanation or e}") from None
        return service["ID"]

    async def wait_running(self, spec: ServerSpec, report: ProgressReport, timeout: float) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        last_message = ""
        while time.monotonic() < deadline:
            tasks = await self._call("tasks", filters={"service": spec.name})
            view = view_tasks(tasks, await self._names_of_nodes(tasks), spec.network, spec.image)
            if view.failure:
                raise LaunchError(view.failure + (await self._log_tail(spec.name) if view.exited else ""))
            if view.message != last_message:
                report(view.message, view.percent)
                last_message = view.message
            if view.address:
                return view.address, spec.port
            await asyncio.sleep(CHECK_INTERVAL)
        raise LaunchError(f"Your server did not start within {timeout:.0f} seconds; last step: {last_message or 'none'}.")

    async def status(self, name: str) -> ServerStatus:
        try:
            tasks = await self._call("tasks", filters={"service": name})
        except NotFound:
            return ServerStatus(alive=False, reason="the service is gone")
        task = newest(tasks)
        if task is None:
            return ServerStatus(alive=False, reason="the service has no task")
        state = task.get("Status", {}).get("State")
        if state in ALIVE_STATES and task.get("DesiredState") == "running":
            return ServerStatus(alive=True)
        status = task.get("Status", {})
        return ServerStatus(alive=False, reason=f"{state}: {status.get('Err') or status.get('Message', '')}")

    async def remove(self, name: str) -> None:
        await self._remove_quietly("remove_service", name)
        for config in await self._call("configs", filters={"label": f"{OBJECT_LABEL}={name}"}):
            await self._remove_quietly("remove_config", config["ID"])

    async def _remove_quietly(self, method: str, object_id: str) -> None:
        try:
            await self._call(method, object_id)
        except NotFound:
            pass

    async def _names_of_nodes(self, tasks: list[dict[str, Any]]) -> dict[str, str]:
        for node_id in {t.get("NodeID") for t in tasks} - set(self._node_names) - {None, ""}:
            node = await self._call("inspect_node", node_id)
            self._node_names[node_id] = node.get("Description", {}).get("Hostname", node_id[:12])
        return self._node_names

    async def _log_tail(self, name: str) -> str:
        def read() -> str:
            chunks = self.client.service_logs(name, stdout=True, stderr=True, tail=LOG_LINES)
            return b"".join(chunks).decode(errors="replace").strip()

        try:
            text = await asyncio.to_thread(read)
        except APIError:
            return ""
        return f" Its last output:\n{text}" if text else ""

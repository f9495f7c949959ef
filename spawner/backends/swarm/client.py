"""The Swarm backend's I/O: create, wait for, inspect and remove the objects of a user server.

Docker SDK calls run in worker threads, never on the hub's event loop. Waiting and status come
from the process's one `SwarmWatcher`, so `status` makes no Docker call at all. Everything made
for a server carries the `jovial.object=<name>` label, so removal finds it all, also after a crash,
and the owner's `jovial.user`/`jovial.server` labels, which status and removal check first: a
service of that name that is not Jovial's server for that owner is never reported as it, and never
removed (`ownership.py`). Removal goes to the ID of the service it inspected.
"""

import asyncio
import logging
from typing import Any

import docker
from docker.errors import APIError, NotFound

from ...errors import LaunchError, NameTaken
from ...spec import OBJECT_LABEL, ServerOwner, ServerSpec
from .. import ListedServer, ProgressReport, ServerStatus
from ..follow import Followers, StatusChanged
from ..ownership import NameLocks, is_removable_file, left_alone, owner_of, why_not_owned
from ..probe import RUNNING_GRACE, Probe, probe_interval
from .builder import config_args, service_args
from .tasks import server_status, view_tasks
from .watcher import SwarmWatcher

LOG_LINES = 10
FIRST_LIST_TIMEOUT = 30.0


class SwarmBackend:
    """Runs each user server as one Docker Swarm service (plus its passwd/group configs).

    `relist_interval`: seconds between the watcher's relists while no spawn is waiting.
    `probe`: how to tell that a running server answers (a hub on the servers' network passes
    `port_answers`); without one, a server counts as started after RUNNING_GRACE seconds of running.
    `placement_timeout`: seconds a server Swarm must start again may wait for a node that can take
    it before it counts as ended (the spawner passes its start timeout).
    """

    def __init__(
        self,
        client: docker.APIClient,
        log: logging.Logger,
        relist_interval: float = 5.0,
        probe: Probe | None = None,
        placement_timeout: float = 120.0,
    ) -> None:
        self.client = client
        self._log = log
        self._placement_timeout = placement_timeout
        self._names = NameLocks()
        self.watcher = SwarmWatcher(client, log, relist_interval)
        self._followers = Followers(self._next_list, self.status, log, self.watcher.hurry)
        self._probe = probe

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)

    async def launch(self, spec: ServerSpec) -> str:
        async with self._names.held(spec.name):
            return await self._launch(spec)

    async def _launch(self, spec: ServerSpec) -> str:
        made: list[str] = []
        try:
            for config in config_args(spec):
                made.append((await self._call("create_config", config.name, config.data, labels=config.labels))["ID"])
            ids = dict(zip((c.name for c in config_args(spec)), made, strict=True))
            service = await self._call("create_service", **service_args(spec, ids))
        except BaseException as e:
            for config_id in made:
                await asyncio.shield(self._remove_quietly("remove_config", config_id))
            if isinstance(e, APIError):
                raise LaunchError(f"The cluster refused to create your server: {e.explanation or e}") from None
            raise
        service_id: str = service["ID"]
        return service_id

    async def wait_running(self, spec: ServerSpec, report: ProgressReport, timeout: float) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_message = ""
        seen = False
        running_since: float | None = None
        with self.watcher.hurry():
            # Only relists started from now on know the service `launch` just made.
            seq = self.watcher.relist_soon()
            while snapshot := await self.watcher.newer_than(seq, deadline - loop.time()):
                seq = snapshot.seq
                service = snapshot.services.get(spec.name)
                if service is None and seen:
                    raise LaunchError("Your server's service was removed while it was starting.")
                seen = service is not None
                view = view_tasks(
                    service.tasks if service else (), snapshot.node_names, spec.network, spec.image,
                    service.restart_policy if service else {}, snapshot.listed_at,
                )
                if view.failure:
                    raise LaunchError(view.failure + (await self._log_tail(spec.name) if view.exited else ""))
                if view.message != last_message:
                    report(view.message, view.percent)
                    last_message = view.message
                if not view.address:
                    running_since = None
                    continue
                if running_since is None:
                    running_since = snapshot.began
                if self._probe is not None:
                    if await self._answers_before_next_list(self._probe, view.address, spec.port, seq, running_since):
                        report("Your server answers", 95)
                        return view.address, spec.port
                elif snapshot.began - running_since >= RUNNING_GRACE:
                    return view.address, spec.port
        raise LaunchError(f"Your server did not start within {timeout:.0f} seconds; last step: {last_message or 'none'}.")

    async def _answers_before_next_list(self, probe: Probe, address: str, port: int, seq: int, running_since: float) -> bool:
        """Probe the port (at `probe_interval`s) until it answers (True) or the watcher has a newer
        list (False: the caller reads it, in case the server failed or moved meanwhile)."""
        loop = asyncio.get_running_loop()
        next_list = asyncio.ensure_future(self.watcher.newer_than(seq, None))
        try:
            while not next_list.done():
                if await probe(address, port):
                    return True
                await asyncio.wait([next_list], timeout=probe_interval(loop.time() - running_since))
            return False
        finally:
            next_list.cancel()

    async def status(self, name: str, owner: ServerOwner) -> ServerStatus:
        snapshot = await self.watcher.newer_than(0, FIRST_LIST_TIMEOUT)
        if snapshot is None:  # Docker does not answer yet: never let the hub stop servers for that
            return ServerStatus(alive=True, reason="not listed yet: the Docker API has not answered")
        service = snapshot.services.get(name)
        if service is None:
            return ServerStatus(alive=False, reason="Your server's service was removed from the cluster (not by the hub).")
        if why_not_owned(service.labels, owner):
            return ServerStatus(alive=False, reason=NameTaken("service", name).jupyterhub_message)
        return server_status(
            service.tasks, service.networks, snapshot.node_names, service.restart_policy, snapshot.listed_at,
            self._placement_timeout,
        )

    async def remove(self, name: str, owner: ServerOwner) -> None:
        async with self._names.held(name):
            try:
                service = await self._call("inspect_service", name)
            except NotFound:
                service = None
            if service is not None:
                labels = service["Spec"].get("Labels") or {}
                why = why_not_owned(labels, owner)
                if why:
                    raise left_alone(self._log, "service", name, owner, f"{why} (its labels: {labels})")
                await self._remove_quietly("remove_service", service["ID"])
            for config in await self._call("configs", filters={"label": f"{OBJECT_LABEL}={name}"}):
                if is_removable_file(config["Spec"].get("Labels") or {}, owner):
                    await self._remove_quietly("remove_config", config["ID"])

    async def first_listed(self) -> list[ListedServer]:
        snapshot = await self.watcher.first()
        owners = {name: owner_of(service.labels) for name, service in snapshot.services.items()}
        return [ListedServer(name, owner) for name, owner in owners.items() if owner is not None]

    def follow(self, name: str, owner: ServerOwner, callback: StatusChanged) -> None:
        self._followers.follow(name, owner, callback)

    def unfollow(self, name: str) -> None:
        self._followers.unfollow(name)

    async def _next_list(self, after: int) -> int:
        snapshot = await self.watcher.newer_than(after, None)
        assert snapshot is not None  # no timeout: it waits for one
        return snapshot.seq

    async def close(self) -> None:
        """Stop the watcher (a hub keeps its backend for its whole life; tests make several)."""
        await self._followers.close()
        await self.watcher.close()

    async def _remove_quietly(self, method: str, object_id: str) -> None:
        try:
            await self._call(method, object_id)
        except NotFound:
            pass

    async def _log_tail(self, name: str) -> str:
        def read() -> str:
            chunks = self.client.service_logs(name, stdout=True, stderr=True, tail=str(LOG_LINES))  # the API's query parameter
            return b"".join(chunks).decode(errors="replace").strip()

        try:
            text = await asyncio.to_thread(read)
        except APIError:
            return ""
        return f" Its last output:\n{text}" if text else ""

"""JovialSpawner: the JupyterHub face of Jovial, stringing identity, spec, storage and backend together.

A `dockerspawner.SwarmSpawner` subclass: it keeps SwarmSpawner's settings where they mean the
same thing (image, allowed_images, cmd, network_name, cpu_limit, mem_limit, cpu_guarantee,
mem_guarantee, start_timeout, environment) and the persisted object name, refuses those it
cannot honour, and replaces how a server is started, watched and removed. Its own settings are
in `settings.py`.
"""

import asyncio
import html
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from dockerspawner import SwarmSpawner
from jupyterhub.objects import Server
from jupyterhub.utils import utcnow
from traitlets import List, Unicode, default
from traitlets.config import Config

from .backends import Backend
from .backends.probe import port_answers
from .backends.swarm import SwarmBackend
from .choices import LAYERED_KEYS, Maxima, check_layer, choose, layered, parse_profiles, resource_spec, still_offered
from .culling import why_it_stopped
from .errors import IdentityError, NameTaken, OptionsError
from .identity import PosixIdentity, check_least_id, identity_from_auth_state, identity_from_mapping
from .ldap_directory import LdapDirectory, LdapSettings
from .names import is_safe_path_component, server_object_name, validate_username
from .orchestrators import ORCHESTRATORS, orchestrator_of, refusals
from .orphans import sweep_orphans
from .settings import JovialSettings
from .spec import DataCollection, ResourceSpec, ServerOwner, SiteSettings, build_server_spec
from .start_request import request_named_options
from .storage import ensure_home, existing_directories

# Settings inherited from DockerSpawner/SwarmSpawner that Jovial cannot honour, and what to use instead.
UNSUPPORTED_SETTINGS = {
    "volumes": "home_path_template, project_path_template or data_collections",
    "read_only_volumes": "data_collections",
    "mounts": "home_path_template, project_path_template or data_collections",
    "volume_driver": "a shared filesystem mounted on the nodes (shared_fs_root)",
    "volume_driver_options": "a shared filesystem mounted on the nodes (shared_fs_root)",
    "extra_host_config": "the JovialSpawner settings (Swarm services take no host config)",
    "extra_create_kwargs": "the JovialSpawner settings",
    "extra_container_spec": "the JovialSpawner settings",
    "extra_resources_spec": "cpu_limit, mem_limit, generic_resources",
    "extra_placement_spec": "node_labels",
    "extra_task_spec": "the JovialSpawner settings",
    "extra_endpoint_spec": "nothing: servers are reached on the overlay network only",
    "post_start_cmd": "the image's own start-up",
    "links": "the overlay network (network_name)",
    "name_template": "nothing: object names follow Jovial's escaping (README)",
    "prefix": "nothing: object names follow Jovial's escaping (README)",
    "escape": "nothing: object names follow Jovial's escaping (README)",
    "use_internal_ip": "nothing: the hub always routes to the task's overlay address",
    "use_internal_hostname": "nothing: the hub always routes to the task's overlay address",
    "host_ip": "nothing: servers publish no ports",
    "pull_policy": "nothing: nodes must hold the image (see README)",
    "remove": "nothing: a stopped server's service is always removed",
    # dockerspawner's deprecated aliases of the settings above.
    "container_ip": "nothing: servers publish no ports",
    "container_prefix": "nothing: object names follow Jovial's escaping (README)",
    "container_name_template": "nothing: object names follow Jovial's escaping (README)",
    "remove_containers": "nothing: a stopped server's service is always removed",
    "image_whitelist": "allowed_images",
    "container_image": "image",
    "container_port": "port",
    "hub_ip_connect": "c.JupyterHub.hub_connect_ip",
    # For volumes and internal_ssl, which are refused.
    "format_volume_name": "home_path_template, project_path_template or data_collections",
    "certs_volume_name": "nothing: internal_ssl is refused",
    "move_certs_image": "nothing: internal_ssl is refused",
    # JupyterHub's own per-group and per-option trait overrides, which would bypass Jovial's checks.
    "group_overrides": "group_settings",
    "apply_user_options": "profiles, allowed_images and max_cpu_limit/max_mem_limit (each option is checked)",
}
# JupyterHub settings that the spawner cannot honour either.
UNSUPPORTED_HUB_SETTINGS = {
    "internal_ssl": "TLS at the site's load balancer in front of the proxy, and encrypted overlay "
    "networks (stacks/encrypted.yml): internal certificates cannot be handed to Swarm services",
}
START_TIMEOUT_MARGIN = 2.0  # seconds: Jovial's own deadline comes before the hub's, so its message is the one shown


class JovialSpawner(JovialSettings, SwarmSpawner):  # type: ignore[misc]  # dockerspawner ships no types
    """Starts each user server as a Swarm service (or a Kubernetes pod) running as the user's LDAP identity."""

    cmd = List(
        Unicode(),
        default_value=["jupyterhub-singleuser"],
        config=True,
        help="The command that starts the single-user server in the image.",
    )

    @default("network_name")
    def _default_network_name(self) -> str:
        return "jovial"

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        # A start ends when the server answers, so this only matters when the hub restarts: it
        # waits this long for each running server to answer, and shuts down one that does not.
        # After the manager's engine restarts, the overlay network can take over 30 s (the hub's
        # default) to reach the servers on other nodes again: giving up then would kill them.
        return 120

    @default("object_name")
    def _object_name_default(self) -> str:
        return server_object_name(self.user.name, self.name)

    @default("options_form")
    def _default_options_form(self) -> Any:
        return type(self)._render_options_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        def options_from_form(form: dict[str, list[str]]) -> dict[str, str]:
            return {key: form[key][0] for key in ("profile", "image") if form.get(key)}

        return options_from_form

    @property
    def will_resume(self) -> bool:
        """False: a stop removes the server's service, and nothing of it resumes, so JupyterHub
        revokes the stopped server's API token and OAuth client (each start gets new ones).
        (DockerSpawner says True unless `remove`, which keeps every stopped server's token valid.)"""
        return False

    _backends: ClassVar[dict[str, Backend]] = {}
    _sweeps: ClassVar[dict[str, asyncio.Task[None]]] = {}  # each backend's orphan sweep (orphans.py)
    _directories: ClassVar[dict[tuple[Any, ...], LdapDirectory]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_config(self.config)
        self._events: list[dict[str, Any]] = []
        self._event_added = asyncio.Event()
        self._starting = False
        self.last_end = ""  # why the user's previous server stopped, if it ended by itself (kept in the state)

    @classmethod
    def check_config(cls, config: Config) -> None:
        """Refuse settings Jovial cannot honour, and malformed profiles or group/user settings.

        Called by every spawner as it is made, and by the hub's config file at the end, so that
        the hub refuses to start with them (see stacks/jupyterhub_config.py)."""
        sections = [k.__name__ for k in reversed(cls.mro()) if k.__name__ in config]  # subclasses last: they win
        found = {f"{s}.{k}": UNSUPPORTED_SETTINGS[k] for s in sections for k in config[s] if k in UNSUPPORTED_SETTINGS}
        hub = config["JupyterHub"] if "JupyterHub" in config else {}
        found.update({f"JupyterHub.{k}": why for k, why in UNSUPPORTED_HUB_SETTINGS.items() if hub.get(k)})
        merged: dict[str, Any] = {}
        for section in sections:
            merged.update(config[section])
        if merged.get("allowed_images") == "*":
            found["allowed_images = '*'"] = "a list or dict of the images users may choose"
        orchestrator = orchestrator_of(merged)
        found.update(refusals(orchestrator, [(s, k) for s in sections for k in config[s]], merged))
        if found:
            lines = "; ".join(f"{name} (use {instead})" for name, instead in sorted(found.items()))
            raise ValueError(f"JovialSpawner cannot honour these settings on {ORCHESTRATORS[orchestrator]}: {lines}")
        check_layer("JovialSpawner", {key: merged[key] for key in LAYERED_KEYS if key in merged})
        for name, layer in {**merged.get("group_settings", {}), **merged.get("user_settings", {})}.items():
            check_layer(f"JovialSpawner group/user settings for {name!r}", layer)
        parse_profiles(merged.get("profiles", []))

    async def backend(self) -> Backend:
        """One backend (and so one watcher of every server) per hub process, shared by every spawner."""
        backends = type(self)._backends
        if self.orchestrator not in backends:
            made = await self._make_backend()
            if backends.setdefault(self.orchestrator, made) is made:
                self._sweep_orphans(made)
        return backends[self.orchestrator]

    def _sweep_orphans(self, backend: Backend) -> None:
        """In a hub (not in a test without one): once the hub has checked its servers, remove those of
        the backend's first list that no spawner of this hub owns (orphans.py)."""
        users = getattr(self.user, "settings", {}).get("users")
        if users is not None:
            type(self)._sweeps[self.orchestrator] = asyncio.get_running_loop().create_task(sweep_orphans(backend, users, self.log))

    async def _make_backend(self) -> Backend:
        """The backend of the configured orchestrator. Swarm's is made in a worker thread: the Docker
        client asks the engine for its API version when created."""
        probe = port_answers if self.check_server_port else None
        if self.orchestrator == "kubernetes":
            from .backends.kubernetes import KubernetesBackend, connect  # the `kubernetes` extra

            api_client, namespace = await connect()
            namespace = self.kubernetes_namespace or namespace
            return KubernetesBackend(api_client, namespace, self.log, self.kubernetes_extended_resources, probe)
        client = await asyncio.to_thread(lambda: self.client)
        return SwarmBackend(client, self.log, self.watch_interval, probe, placement_timeout=self.start_timeout)

    @property
    def directory(self) -> LdapDirectory:
        """One directory reader (and cache, and connection) per LDAP configuration, shared by every
        spawner; the bind password file is read once, when that reader is made."""
        key = (
            self.ldap_url, self.ldap_user_base_dn, self.ldap_group_base_dn, self.ldap_bind_dn, self.ldap_bind_password_file,
            self.ldap_timeout, self.identity_cache_ttl, self.ldap_tls, self.ldap_ca_file,
        )
        directories = type(self)._directories
        if key not in directories:
            password = Path(self.ldap_bind_password_file).read_text().strip() if self.ldap_bind_password_file else ""
            directories[key] = LdapDirectory(
                LdapSettings(
                    url=self.ldap_url,
                    user_base_dn=self.ldap_user_base_dn,
                    group_base_dn=self.ldap_group_base_dn,
                    bind_dn=self.ldap_bind_dn,
                    bind_password=password,
                    timeout=self.ldap_timeout,
                    cache_ttl=self.identity_cache_ttl,
                    tls=self.ldap_tls or ("on_connect" if self.ldap_url.startswith("ldaps://") else "before_bind"),
                    ca_file=self.ldap_ca_file,
                )
            )
        return directories[key]

    async def resolve_identity(self, username: str) -> PosixIdentity:
        """From the static table, else LDAP, else the authenticator's auth_state."""
        if username in self.identities:
            return identity_from_mapping(username, self.identities[username])
        if self.ldap_url:
            return await self.directory.lookup(username)
        identity = identity_from_auth_state(username, await self.user.get_auth_state())
        if identity is None:
            raise IdentityError(f"No identity source knows {username!r}: not in `identities`, no LDAP, no uidNumber in auth_state.")
        return identity

    async def _resolved(self, value: Any) -> Any:
        """A setting's value; a callable is called with the spawner (and awaited if async)."""
        if callable(value):
            value = value(self)
            if inspect.isawaitable(value):
                value = await value
        return value

    async def _resolved_layer(self, layer: dict[str, Any]) -> dict[str, Any]:
        return {key: await self._resolved(value) for key, value in layer.items()}

    async def server_settings(self, identity: PosixIdentity) -> dict[str, Any]:
        """The settings of this user's server: site -> groups -> user -> profile -> user's choices.

        Choices the start request named are refused when the site does not offer them; choices
        remembered from the user's previous start are dropped then, with a progress message."""
        groups = [g.name for g in identity.groups]
        options = self.user_options
        if not request_named_options(self.handler):
            options, notes = self._still_offered(options, groups)
            for note in notes:
                self._report(note, 15)
        choice = choose(options, parse_profiles(self.profiles), self._offered_images(), self._maxima(), groups)
        base = await self._resolved_layer({key: getattr(self, key) for key in sorted(LAYERED_KEYS)})
        group_layers = {name: await self._resolved_layer(layer) for name, layer in self.group_settings.items()}
        user_layer = await self._resolved_layer(self.user_settings.get(identity.username, {}))
        return layered(base, group_layers, user_layer, await self._resolved_layer(choice), groups)

    def _maxima(self) -> Maxima:
        return Maxima(self.max_cpu_limit, self.max_mem_limit)

    def _still_offered(self, remembered: dict[str, Any], groups: list[str]) -> tuple[dict[str, Any], list[str]]:
        return still_offered(remembered, parse_profiles(self.profiles), self._offered_images(), self._maxima(), groups)

    def _remembered_options(self) -> dict[str, Any]:
        """The options of the user's previous start, as JupyterHub keeps them in its database."""
        return (self.orm_spawner.user_options if self.orm_spawner is not None else self.user_options) or {}

    def _offered_images(self) -> dict[str, str]:
        """allowed_images as a dict (a callable may have returned '*', which Jovial refuses)."""
        images = self._get_allowed_images() or {}
        if not isinstance(images, dict):
            raise OptionsError("This hub's allowed_images is '*'; Jovial only runs images the site lists. Tell an administrator.")
        return images

    def site_settings(self, chosen: dict[str, Any]) -> SiteSettings:
        return SiteSettings(
            image=chosen["image"],
            network=self.network_name,
            port=self.port,
            home_source_template=self.home_path_template,
            home_target_template=self.home_mount_template,
            node_labels=chosen["node_labels"] or {},
            resources=resource_spec(chosen),
            project_source_template=self.project_path_template,
            project_target_template=self.project_mount_template,
            data_collections=tuple(
                DataCollection(d["source"], d["target"], frozenset(d.get("groups", ()))) for d in self.data_collections
            ),
            scratch_bytes=self.scratch_size,
            scratch_target=self.scratch_mount,
        )

    async def _render_options_form(self) -> str:
        """The spawn form: a profile (size) and an image, when the site offers a choice, with the
        user's previous choices selected where the site still offers them; above them, why the
        previous server stopped if it ended by itself, and which previous choices were dropped."""
        identity = await self.resolve_identity(validate_username(self.user.name))
        groups = [g.name for g in identity.groups]
        profiles = [p for p in parse_profiles(self.profiles) if p.allows(groups)]
        images = list(self._offered_images())
        remembered, notes = self._still_offered(self._remembered_options(), groups)
        warnings = ([self.last_end] if self.last_end else []) + notes
        parts = [f'<div class="alert alert-warning" role="alert">{html.escape(w)}</div>' for w in warnings]
        if len(profiles) > 1:
            parts.append(_select("profile", "Size", [(p.name, p.display_name) for p in profiles], remembered.get("profile")))
        if len(images) > 1:
            parts.append(_select("image", "Image", [(i, i) for i in images], remembered.get("image")))
        return "\n".join(parts)

    def _report(self, message: str, percent: int) -> None:
        self.log.info("%s: %s", self._log_name, message)
        self._events.append({"progress": percent, "message": message})
        self._event_added.set()
        self._event_added = asyncio.Event()

    async def progress(self) -> Any:
        """Stream the real steps of the current spawn to the hub's progress bar."""
        shown = 0
        while True:
            waiter = self._event_added
            while shown < len(self._events):
                yield self._events[shown]
                shown += 1
            if not self._starting:
                return
            await waiter.wait()

    async def start(self) -> tuple[str, int]:
        self._events = []
        self._starting = True
        try:
            return await self._start()
        finally:
            self._starting = False
            self._event_added.set()

    async def _start(self) -> tuple[str, int]:
        deadline = asyncio.get_running_loop().time() + self.start_timeout - START_TIMEOUT_MARGIN
        if self.last_end:
            self._report(self.last_end, 5)
        username = validate_username(self.user.name)
        identity = await self.resolve_identity(username)
        check_least_id(identity, self.min_id)
        self._report(f"Found your account: {identity.username}, uid {identity.uid}, gid {identity.gid}", 10)
        site = self.site_settings(await self.server_settings(identity))
        home = site.home_source_template.format(username=username)
        created = await asyncio.to_thread(ensure_home, self.shared_fs_root, home, identity.uid, identity.gid)
        self._report(f"{'Created' if created else 'Found'} your home directory {home}", 20)
        spec = build_server_spec(
            site,
            identity,
            name=self.object_name,
            server_name=self.name,
            env={**self.get_env(), **_resource_env(site.resources), "JUPYTER_IMAGE_SPEC": site.image},
            command=[*self.cmd, *self.get_args()],
            project_groups=await self._project_groups(identity),
        )
        backend = await self.backend()
        await backend.remove(spec.name, spec.owner)  # whatever an earlier, interrupted start may have left
        try:
            self.object_id = await backend.launch(spec)
            self._report("Asked the cluster for your server", 30)
            remaining = deadline - asyncio.get_running_loop().time()
            address = await backend.wait_running(spec, self._report, timeout=remaining)
        except BaseException:
            await asyncio.shield(self._remove_after_failure())
            raise
        self.last_end = ""
        return address

    async def _remove_after_failure(self) -> None:
        """Remove what a failed start made; a problem doing so is logged, not raised over the user's error."""
        try:
            await self._remove()
        except Exception:
            self.log.exception("Could not remove the objects of %s's failed start: %s", self._log_name, self.object_name)

    async def _project_groups(self, identity: PosixIdentity) -> list[str]:
        """The user's groups whose project directory exists on the shared filesystem."""
        if not self.project_path_template:
            return []
        paths = {self.project_path_template.format(group=g.name): g.name for g in identity.groups if is_safe_path_component(g.name)}
        found = await asyncio.to_thread(existing_directories, self.shared_fs_root, list(paths))
        return [paths[p] for p in found]

    @property
    def _owner(self) -> ServerOwner:
        """Whose server this is, as the labels of its objects say."""
        return ServerOwner(self.user.name, self.name)

    async def _remove(self) -> None:
        """Remove the server's objects. One of its name that is not Jovial's for this user is left
        alone (the backend logged it for the operator): nothing of this server's is there."""
        try:
            await (await self.backend()).remove(self.object_name, self._owner)
        except NameTaken:
            pass
        self.object_id = ""

    async def poll(self) -> int | str | None:
        """Alive or not from the watcher's memory (no orchestrator call). A running server that the
        orchestrator moved to a new address gets its hub route moved along; one that ended by
        itself is removed, and why it ended is kept for the user (`last_end`)."""
        backend = await self.backend()  # also when nothing runs: a restarted hub's checks bring up its watcher and sweep
        if not self.object_id:
            return self.last_end or 0
        status = await backend.status(self.object_name, self._owner)
        if not status.alive:
            await self._ended(status.reason)
            return self.last_end
        if self.ready and status.address and status.address != self.server.ip:
            self.log.warning("%s moved from %s to %s; updating its route", self._log_name, self.server.ip, status.address)
            self.server.ip = status.address
            self.user.db.commit()
            try:
                await self.user.settings["proxy"].add_user(self.user, self.name)
            except Exception:  # the proxy may be restarting: the hub's periodic route check repairs it
                self.log.exception("Could not update the proxy's route of %s", self._log_name)
        return None

    async def get_url(self) -> str:
        """Where the server answers now. JupyterHub asks this when it starts, before it checks that
        each server it had running still answers: a server that the orchestrator moved while the
        hub was down is looked for at its new address, not at the one in the hub's database."""
        status = await (await self.backend()).status(self.object_name, self._owner)
        if not (status.alive and status.address):
            url: str = await super().get_url()
            return url
        server = self.server
        url = Server(proto=server.proto, ip=status.address, port=server.port, base_url=server.base_url).url
        return url

    async def _ended(self, reason: str) -> None:
        """The server ended without the hub stopping it: remember why, and remove what is left of it
        (JupyterHub calls stop() only for servers that poll() finds alive)."""
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        self.last_end = f"Your previous server stopped at {at}. {reason}"
        self.log.warning("%s ended: %s", self._log_name, reason)
        try:
            await self._remove()
        except Exception:
            self.log.exception("Could not remove what is left of %s's ended server: %s", self._log_name, self.object_name)

    def start_polling(self) -> None:
        """JupyterHub's periodic poll, and a poll as soon as the backend sees the server die or move."""
        super().start_polling()
        backend = type(self)._backends.get(self.orchestrator)
        if backend is not None and self.object_id:
            backend.follow(self.object_name, self._owner, self.poll_and_notify)

    def stop_polling(self) -> None:
        super().stop_polling()
        backend = type(self)._backends.get(self.orchestrator)
        if backend is not None:
            backend.unfollow(self.object_name)

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.last_end:
            state["last_end"] = self.last_end
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.last_end = state.get("last_end", "")

    def clear_state(self) -> None:
        """Before a new server (and after one stopped): once nothing runs, the next server takes the
        name made today (names.py), not the one a server started by an older Jovial kept in the state."""
        super().clear_state()
        if not self.object_id:
            self.object_name: str = self._object_name_default()  # DockerSpawner's trait

    async def stop(self, now: bool = False) -> None:
        await self._remove()
        orm = self.orm_spawner
        if orm is not None:  # what to tell her if the site's culler stopped it (culling.py)
            self.last_end = why_it_stopped(
                utcnow(with_tz=False), orm.started, orm.last_activity,
                self.cull_idle_timeout, self.cull_max_age,
            )


def _resource_env(resources: ResourceSpec) -> dict[str, str]:
    """The limits the server was really given (JupyterHub's get_env has the base settings' only)."""
    named = {"CPU_LIMIT": resources.cpu_limit, "CPU_GUARANTEE": resources.cpu_reservation,
             "MEM_LIMIT": resources.mem_limit, "MEM_GUARANTEE": resources.mem_reservation}
    return {key: str(value) for key, value in named.items() if value is not None}


def _select(name: str, label: str, choices: list[tuple[str, str]], selected: str | None) -> str:
    options = "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>{html.escape(text)}</option>'
        for v, text in choices
    )
    return f'<label for="{name}">{label}</label><select class="form-control" id="{name}" name="{name}">{options}</select>'

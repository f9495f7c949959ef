"""JovialSpawner: the JupyterHub face of Jovial, stringing identity, spec, storage and backend together.

A `dockerspawner.SwarmSpawner` subclass: it keeps SwarmSpawner's settings where they mean the
same thing (image, cmd, network_name, cpu_limit, mem_limit, cpu_guarantee, mem_guarantee,
start_timeout) and the persisted object name, and replaces how a server is started, watched and
removed.
"""

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from dockerspawner import SwarmSpawner
from traitlets import Dict, Float, List, Unicode, default

from .backends import Backend
from .backends.swarm import SwarmBackend
from .errors import JovialError
from .ldap_directory import LdapDirectory, LdapSettings
from .names import server_object_name, validate_username
from .spec import ResourceSpec, SiteSettings, build_server_spec
from .storage import ensure_home


class JovialSpawner(SwarmSpawner):
    """Starts each user server as a Swarm service running as the user's LDAP identity."""

    ldap_url = Unicode(
        "ldap://ldap:389",
        config=True,
        help="URL of the site's LDAP server holding posixAccount/posixGroup entries, e.g. ldaps://ldap.example.org.",
    )
    ldap_user_base_dn = Unicode(
        "ou=people,dc=jovial,dc=test",
        config=True,
        help="Where posixAccount entries live; a user is found by `uid=<username>` below it.",
    )
    ldap_group_base_dn = Unicode(
        "ou=groups,dc=jovial,dc=test",
        config=True,
        help="Where posixGroup entries live; a user's groups are those listing them in memberUid, plus their primary group.",
    )
    ldap_bind_dn = Unicode(
        "",
        config=True,
        help="DN the hub binds as to read identities (read-only account); empty for an anonymous bind.",
    )
    ldap_bind_password_file = Unicode(
        "",
        config=True,
        help="File holding the bind DN's password, e.g. a Docker secret: /run/secrets/ldap_bind_password.",
    )
    ldap_timeout = Float(
        5.0, config=True, help="Seconds to wait for the LDAP server to connect or answer before the spawn fails."
    )
    identity_cache_ttl = Float(
        300.0, config=True, help="Seconds a user's identity read from LDAP is reused before it is read again."
    )
    shared_fs_root = Unicode(
        "/lustre",
        config=True,
        help="Root of the shared filesystem, mounted at this same path on the hub and on every node "
        "labelled for it. Homes are only ever made below it.",
    )
    home_path_template = Unicode(
        "/lustre/home/{username}",
        config=True,
        help="The user's home on the shared filesystem ({username} is the raw, validated username). "
        "Created on first spawn, owned by the user, mode 0700.",
    )
    home_mount_template = Unicode(
        "/home/{username}", config=True, help="Where the home is mounted inside the server; also $HOME and the working directory."
    )
    node_labels = Dict(
        value_trait=Unicode(),
        default_value={"jovial.fs": "lustre"},
        config=True,
        help="Node labels a node must carry to run user servers, e.g. the label of nodes that mount "
        "the shared filesystem: {'jovial.fs': 'lustre'} becomes the constraint node.labels.jovial.fs==lustre.",
    )
    cmd = List(
        Unicode(),
        default_value=["jupyterhub-singleuser"],
        config=True,
        help="The command that starts the single-user server in the image.",
    )

    @default("network_name")
    def _default_network_name(self) -> str:
        return "jovial"

    @default("object_name")
    def _object_name_default(self) -> str:
        return server_object_name(self.user.name, self.name)

    _backends: ClassVar[dict[str, Backend]] = {}
    _directories: ClassVar[dict[LdapSettings, LdapDirectory]] = {}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._events: list[dict[str, Any]] = []
        self._event_added = asyncio.Event()
        self._starting = False

    @property
    def backend(self) -> Backend:
        """One backend (and so one watcher of every server) per hub process, shared by every spawner."""
        backends = type(self)._backends
        if "swarm" not in backends:
            backends["swarm"] = SwarmBackend(self.client, self.log)
        return backends["swarm"]

    @property
    def directory(self) -> LdapDirectory:
        """One directory reader (and cache) per LDAP configuration, shared by every spawner."""
        password = Path(self.ldap_bind_password_file).read_text().strip() if self.ldap_bind_password_file else ""
        settings = LdapSettings(
            url=self.ldap_url,
            user_base_dn=self.ldap_user_base_dn,
            group_base_dn=self.ldap_group_base_dn,
            bind_dn=self.ldap_bind_dn,
            bind_password=password,
            timeout=self.ldap_timeout,
            cache_ttl=self.identity_cache_ttl,
        )
        return type(self)._directories.setdefault(settings, LdapDirectory(settings))

    def site_settings(self) -> SiteSettings:
        return SiteSettings(
            image=self.image,
            network=self.network_name,
            port=self.port,
            home_source_template=self.home_path_template,
            home_target_template=self.home_mount_template,
            node_labels=self.node_labels,
            resources=ResourceSpec(
                cpu_limit=self.cpu_limit,
                cpu_reservation=self.cpu_guarantee,
                mem_limit=self.mem_limit,
                mem_reservation=self.mem_guarantee,
            ),
        )

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
        if self.user_options:
            raise JovialError(f"This hub offers no server options; got {sorted(self.user_options)}.")
        username = validate_username(self.user.name)
        identity = await self.directory.lookup(username)
        self._report(f"Found your account: {identity.username}, uid {identity.uid}, gid {identity.gid}", 10)
        spec = build_server_spec(
            self.site_settings(),
            identity,
            name=self.object_name,
            server_name=self.name,
            env=self.get_env(),
            command=[*self.cmd, *self.get_args()],
        )
        home = spec.mounts[0].source
        created = await asyncio.to_thread(ensure_home, self.shared_fs_root, home, identity.uid, identity.gid)
        self._report(f"{'Created' if created else 'Found'} your home directory {home}", 20)
        await self.backend.remove(spec.name)
        self.object_id = await self.backend.launch(spec)
        self._report("Asked the cluster for your server", 30)
        try:
            return await self.backend.wait_running(spec, self._report, timeout=self.start_timeout)
        except BaseException:
            await asyncio.shield(self._remove())
            raise

    async def _remove(self) -> None:
        await self.backend.remove(self.object_name)
        self.object_id = ""

    async def poll(self) -> int | str | None:
        """Alive or not from the watcher's memory (no orchestrator call); a running server that the
        orchestrator moved to a new address gets its hub route moved along."""
        if not self.object_id:
            return 0
        status = await self.backend.status(self.object_name)
        if not status.alive:
            return status.reason or 0
        if self.ready and status.address and status.address != self.server.ip:
            self.log.warning("%s moved from %s to %s; updating its route", self._log_name, self.server.ip, status.address)
            self.server.ip = status.address
            self.user.db.commit()
            try:
                await self.user.settings["proxy"].add_user(self.user, self.name)
            except Exception:  # the proxy may be restarting: the hub's periodic route check repairs it
                self.log.exception("Could not update the proxy's route of %s", self._log_name)
        return None

    async def stop(self, now: bool = False) -> None:
        await self._remove()

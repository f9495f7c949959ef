"""JupyterHub configuration of the Jovial stack, handed to the hub as a Docker config.

Site choices come from the hub service's environment (see docker-stack.yml and the README's
"Configure a real site"); secrets only ever from Docker secrets under /run/secrets.
"""

import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url

from jovial.hub_lock import HubLock

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)


def setting(name: str, default: str | None = None) -> str:
    """The environment variable `name`; empty counts as unset."""
    value = os.environ.get(name) or default
    if value is None:
        raise SystemExit(f"Jovial hub: the environment variable {name} must be set (see docker-stack.yml).")
    return value


def secret(name: str) -> str:
    return Path("/run/secrets", name).read_text().strip()


# --- the hub, its proxy and its database -------------------------------------------------------
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
# The database: PostgreSQL at JOVIAL_DB_URL, with the password from the secret db_password. Before
# JupyterHub opens it, the hub waits for it (a log line every 30 s) and takes the hub lock, held
# for its life: a second hub waits here until the first one's connection is gone.
db_url = make_url(setting("JOVIAL_DB_URL"))
if db_url.get_backend_name() != "postgresql":
    raise SystemExit(f"Jovial hub: JOVIAL_DB_URL must be a PostgreSQL URL (postgresql://user@host:port/database), "
                     f"not {db_url.render_as_string()!r}: the hub may run on any manager, so its database is not a file.")
# psycopg (version 3), named: the hub image's driver, whatever SQLAlchemy's default for postgresql:// is.
c.JupyterHub.db_url = db_url.set(drivername="postgresql+psycopg", password=secret("db_password")).render_as_string(hide_password=False)
HubLock(c.JupyterHub.db_url, logging.getLogger("JupyterHub")).hold()
c.JupyterHub.cookie_secret_file = "/run/secrets/cookie_secret"
c.JupyterHub.cleanup_servers = False  # user servers outlive hub restarts and are found again
# Every 30 s (default 300 s) the hub records activity and checks the proxy's routes against its own
# (a restarted proxy asks for its routes at once, see below; this check is the safety net).
c.JupyterHub.last_activity_interval = 30
c.ConfigurableHTTPProxy.should_start = False  # the proxy is its own stack service
c.ConfigurableHTTPProxy.api_url = "http://proxy:8001"
c.ConfigurableHTTPProxy.auth_token = secret("proxy_token")
# A restarted proxy has no routes: its start script asks the hub to sync them at once
# (POST /hub/api/proxy, images/proxy/sync-routes.js) with the proxy's own token, which already
# controls every route in the proxy; as a hub token it may do that one thing and nothing else.
c.JupyterHub.services = [{"name": "proxy-sync", "api_token": c.ConfigurableHTTPProxy.auth_token}]
c.JupyterHub.load_roles = [{"name": "proxy-sync", "scopes": ["proxy"], "services": ["proxy-sync"]}]

# --- who may log in: the site's LDAP -------------------------------------------------------------
ldap_url = urlparse(setting("JOVIAL_LDAP_URL"))
c.JupyterHub.authenticator_class = "jovial.authenticator.JovialLDAPAuthenticator"
c.LDAPAuthenticator.server_address = ldap_url.hostname
c.LDAPAuthenticator.server_port = ldap_url.port or (636 if ldap_url.scheme == "ldaps" else 389)
c.LDAPAuthenticator.tls_strategy = setting("JOVIAL_LDAP_TLS", "on_connect" if ldap_url.scheme == "ldaps" else "before_bind")
# With TLS, logins (and the spawner's identity reads, below) verify the LDAP server's certificate and
# name against this CA bundle, a path in the hub's container; empty: the system's CAs.
c.JovialLDAPAuthenticator.ldap_ca_file = setting("JOVIAL_LDAP_CA_FILE", "")
user_base_dn = setting("JOVIAL_LDAP_USER_BASE_DN")
c.LDAPAuthenticator.bind_dn_template = [setting("JOVIAL_LDAP_USER_DN_TEMPLATE", "uid={username}," + user_base_dn)]

# Which of them may log in and spawn a server:
#  - JOVIAL_LDAP_ALLOWED_GROUPS: group DNs separated by ";" (DNs contain commas), e.g.
#    "cn=astro,ou=groups,dc=example,dc=org;cn=gaia,ou=groups,dc=example,dc=org". A user may log in
#    when at least one of these entries, read with the user's own bind, lists them in `member` or
#    `uniqueMember` (their DN) or `memberUid` (their name): ldapauthenticator's allowed_groups. A
#    posixGroup that is only the user's primary group (gidNumber) does not count.
#  - JOVIAL_ALLOW_ALL_USERS="true": everyone with an account in the directory (the dev overlay's
#    demo users). Default "false".
# Neither: the hub starts, but JupyterHub lets nobody in.
# Before every spawn, and at most every 5 minutes (auth_refresh_age, 300 s) on each user's requests,
# the hub asks the directory again, with its own account (also the spawner's, below), whether the
# user's account still exists and, with allowed groups, is still in one of them. Someone removed
# from the groups or deleted can no longer start a server with a cookie or an API token (403), and
# their next login is refused; while the directory does not answer, starts are refused with a 503.
c.JovialLDAPAuthenticator.ldap_bind_dn = setting("JOVIAL_LDAP_BIND_DN", "")
c.JovialLDAPAuthenticator.ldap_bind_password_file = "/run/secrets/ldap_bind_password"
allowed_groups = [dn.strip() for dn in setting("JOVIAL_LDAP_ALLOWED_GROUPS", "").split(";") if dn.strip()]
allow_all = setting("JOVIAL_ALLOW_ALL_USERS", "false").strip().lower()
if allow_all not in ("true", "false"):
    raise SystemExit(f"Jovial hub: JOVIAL_ALLOW_ALL_USERS must be true or false, not {allow_all!r}.")
c.LDAPAuthenticator.allowed_groups = allowed_groups
# Admins: members of these groups (DNs separated by ";", listed as for allowed groups), read with the
# hub's account at each login and re-check; empty: nobody is made an admin by the directory.
c.JovialLDAPAuthenticator.admin_groups = [dn.strip() for dn in setting("JOVIAL_LDAP_ADMIN_GROUPS", "").split(";") if dn.strip()]
c.Authenticator.allow_all = allow_all == "true"
if not allowed_groups and allow_all != "true":
    logging.getLogger("JupyterHub").warning(
        "Jovial: neither JOVIAL_LDAP_ALLOWED_GROUPS nor JOVIAL_ALLOW_ALL_USERS=true is set: nobody may log in. "
        "Set JOVIAL_LDAP_ALLOWED_GROUPS to the DNs of the groups whose members may use the hub "
        "(see the README, \"Configure a real site\") and deploy the stack again."
    )

# --- how their servers run: Jovial -------------------------------------------------------------------
fs_root = setting("JOVIAL_FS_ROOT")
c.JupyterHub.spawner_class = "jovial"
c.JovialSpawner.image = setting("JOVIAL_SINGLEUSER_IMAGE")
# Images users choose from (the form, or {"image": "astro"} in a REST API spawn); the minimal
# image is the default. Keys are what users see and send; values are image IDs or names.
c.JovialSpawner.allowed_images = {"minimal": c.JovialSpawner.image}
if setting("JOVIAL_ASTRO_IMAGE", ""):
    c.JovialSpawner.allowed_images["astro"] = setting("JOVIAL_ASTRO_IMAGE")
c.JovialSpawner.network_name = setting("JOVIAL_NETWORK", "jovial")
c.JovialSpawner.ldap_url = setting("JOVIAL_LDAP_URL")
c.JovialSpawner.ldap_tls = c.LDAPAuthenticator.tls_strategy  # same names, same meaning
c.JovialSpawner.ldap_ca_file = c.JovialLDAPAuthenticator.ldap_ca_file  # logins and identity reads trust the same CAs
c.JovialSpawner.ldap_user_base_dn = user_base_dn
c.JovialSpawner.ldap_group_base_dn = setting("JOVIAL_LDAP_GROUP_BASE_DN")
c.JovialSpawner.ldap_bind_dn = c.JovialLDAPAuthenticator.ldap_bind_dn  # one hub account re-checks users and reads identities
c.JovialSpawner.ldap_bind_password_file = c.JovialLDAPAuthenticator.ldap_bind_password_file
c.JovialSpawner.shared_fs_root = fs_root
c.JovialSpawner.home_path_template = fs_root + "/home/{username}"
# Group project directories: <root>/projects/<group>, made by the site (owned by root and the
# group, mode 2770), mounted read-write at /projects/<group> for members whose group has one.
c.JovialSpawner.project_path_template = fs_root + "/projects/{group}"


def data_collections(spec: str) -> list[dict]:
    """JOVIAL_DATA_COLLECTIONS ("demo;gaia-dr3:gaia,survey") -> read-only mounts of
    <root>/data/<name> at /data/<name>, for everyone or for members of the listed groups."""
    collections = []
    for entry in filter(None, (part.strip() for part in spec.split(";"))):
        name, _, groups = entry.partition(":")
        if not name or "/" in name or name in (".", ".."):
            raise SystemExit(f"Jovial hub: JOVIAL_DATA_COLLECTIONS: {name!r} is not a directory name.")
        collection = {"source": f"{fs_root}/data/{name}", "target": f"/data/{name}"}
        if groups:
            collection["groups"] = [g.strip() for g in groups.split(",") if g.strip()]
        collections.append(collection)
    return collections


c.JovialSpawner.data_collections = data_collections(setting("JOVIAL_DATA_COLLECTIONS", ""))
c.JovialSpawner.node_labels = {setting("JOVIAL_FS_LABEL", "jovial.fs"): setting("JOVIAL_FS_LABEL_VALUE", "lustre")}
c.JovialSpawner.cpu_limit = float(setting("JOVIAL_CPU_LIMIT", "1"))
c.JovialSpawner.mem_limit = setting("JOVIAL_MEM_LIMIT", "2G")
# Sizes users choose from in the spawn form (the first is the default, also for REST API spawns).
c.JovialSpawner.profiles = [
    {"name": "small", "display_name": "Small: 1 core, 2 GB"},
    {"name": "large", "display_name": "Large: 2 cores, 4 GB", "cpu_limit": 2, "mem_limit": "4G"},
]
c.JovialSpawner.start_timeout = int(setting("JOVIAL_START_TIMEOUT", "120"))  # seconds a spawn may take
c.JovialSpawner.min_id = int(setting("JOVIAL_MIN_ID", "1000"))  # the docker-proxy enforces the same bound


# --- idle servers: jupyterhub-idle-culler, a service of the hub ----------------------------------
def seconds(name: str, default: str) -> int:
    """A whole number of seconds, 0 or more, from the environment variable `name`."""
    value = setting(name, default).strip()
    if not value.isdigit():
        raise SystemExit(f"Jovial hub: {name} must be a whole number of seconds (0: off), not {value!r}.")
    return int(value)


# JOVIAL_CULL_IDLE: a server without activity (no request through the proxy, no kernel or terminal
# busy) for this long is stopped; its files stay. JOVIAL_CULL_MAX_AGE: any server is stopped after
# this long. 0 turns either off; both 0: no culler runs.
cull_idle, cull_max_age = seconds("JOVIAL_CULL_IDLE", "3600"), seconds("JOVIAL_CULL_MAX_AGE", "0")
if cull_idle or cull_max_age:
    # It looks every half of the shortest limit (at most every 5 minutes, at least every 10 s), so a
    # server stops at most that much after its limit.
    every = max(10, min(300, min(t for t in (cull_idle, cull_max_age) if t) // 2))
    c.JupyterHub.services.append({
        "name": "idle-culler",
        # Its idle timeout has no "off" (0 would stop every server): with JOVIAL_CULL_IDLE=0, a century.
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={cull_idle or 100 * 365 * 86400}",
                    f"--max-age={cull_max_age}", f"--cull-every={every}"],
    })
    # Only what it needs: see users' servers and their activity, and stop them.
    c.JupyterHub.load_roles.append({
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    })
    c.JovialSpawner.cull_idle_timeout = cull_idle  # for the note at the user's next start
    c.JovialSpawner.cull_max_age = cull_max_age

# Refuse, at hub start, settings Jovial cannot honour on Swarm (and malformed profiles or
# group/user settings), naming each; keep this line last.
from jovial.spawner import JovialSpawner  # noqa: E402

JovialSpawner.check_config(c)

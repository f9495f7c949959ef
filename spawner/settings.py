"""Every Jovial setting, as a documented traitlet (configure as `c.JovialSpawner.<name>`).

Settings that shape a server (image, limits, placement) can also be set per group, per user and
per profile (see `choices.py`); any of those values may be a callable taking the spawner, sync
or async, resolved at spawn time.
"""

from jupyterhub.traitlets import ByteSpecification, Callable
from traitlets import Bool, Dict, Enum, Float, Int, List, Unicode, Union
from traitlets.config import Configurable

from .orchestrators import DEFAULT_EXTENDED_RESOURCES, ORCHESTRATORS


class JovialSettings(Configurable):
    """The settings JovialSpawner adds to those it keeps from SwarmSpawner."""

    # --- identity -------------------------------------------------------------------------------
    ldap_url = Unicode(
        "ldap://ldap:389",
        config=True,
        help="URL of the site's LDAP server with posixAccount/posixGroup entries, e.g. "
        "ldaps://ldap.example.org. Empty: no LDAP lookups (identities from `identities` or auth_state).",
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
        "", config=True, help="DN the hub binds as to read identities (a read-only account); empty for an anonymous bind."
    )
    ldap_bind_password_file = Unicode(
        "", config=True, help="File holding the bind DN's password, e.g. the Docker secret /run/secrets/ldap_bind_password."
    )
    ldap_tls = Unicode(
        None,
        allow_none=True,
        config=True,
        help="How the hub's LDAP reads are protected: 'on_connect' (ldaps://), 'before_bind' (StartTLS "
        "on ldap://) — both verify the server's certificate — or 'insecure' (plain ldap://, only for a "
        "private test network: a forged answer could name another user's uid). Default: by the URL's scheme.",
    )
    ldap_ca_file = Unicode("", config=True, help="CA bundle to verify the LDAP server's certificate with; empty: the system's CAs.")
    ldap_timeout = Float(5.0, config=True, help="Seconds to wait for LDAP to connect or answer before the spawn fails.")
    identity_cache_ttl = Float(300.0, config=True, help="Seconds an identity read from LDAP is reused before it is read again.")
    min_id = Int(
        1000,
        min=1,
        config=True,
        help="The least uid and gid (primary and every group) a server may run with: the ids below are the "
        "nodes' system accounts and groups (such as the docker group, which may use the engine's socket). "
        "A user whose account or groups have a lower id is refused with the ids named. The docker-proxy "
        "enforces the same bound (JOVIAL_MIN_ID).",
    )
    identities = Dict(
        config=True,
        help="A static identity table for small sites without LDAP (checked first): "
        "{'alice': {'uid': 10001, 'gid': 10001, 'name': 'Alice', 'groups': {'astro': 20001}}}. "
        "Users in neither this table nor LDAP may still spawn if the authenticator kept their "
        "uidNumber/gidNumber in auth_state (LDAPAuthenticator.auth_state_attributes).",
    )

    # --- the shared filesystem --------------------------------------------------------------------
    shared_fs_root = Unicode(
        "/lustre",
        config=True,
        help="Root of the shared filesystem, mounted at this same path on the hub and on every node "
        "labelled for it. Homes are only ever made below it, and nothing below it is followed through a symlink.",
    )
    home_path_template = Unicode(
        "/lustre/home/{username}",
        config=True,
        help="The user's home on the shared filesystem ({username}: the raw, validated username). "
        "Created on first spawn, owned by the user, mode 0700.",
    )
    home_mount_template = Unicode(
        "/home/{username}", config=True, help="Where the home appears in the server; also $HOME and the working directory."
    )
    project_path_template = Unicode(
        "",
        config=True,
        help="A group's project directory on the shared filesystem, e.g. /lustre/projects/{group}. "
        "Each of the user's posix groups whose directory exists is mounted read-write (the site "
        "makes these directories, group-owned, e.g. mode 2770). Empty: none.",
    )
    project_mount_template = Unicode("/projects/{group}", config=True, help="Where a project directory appears in the server.")
    data_collections = List(
        Dict(),
        config=True,
        help="Site datasets mounted read-only: [{'source': '/lustre/data/gaia-dr3', 'target': '/data/gaia-dr3', "
        "'groups': ['gaia']}] ('groups' optional: only their members get it).",
    )
    scratch_size = ByteSpecification(
        None,
        allow_none=True,
        config=True,
        help="Size of a private, per-session in-memory scratch space (e.g. '4G'), gone when the server stops. None: no scratch.",
    )
    scratch_mount = Unicode("/scratch", config=True, help="Where the per-session scratch space appears.")

    # --- placement, resources, choices -------------------------------------------------------------
    node_labels = Union(
        [Dict(value_trait=Unicode()), Callable()],
        default_value={"jovial.fs": "lustre"},
        config=True,
        help="Node labels a node must carry to run user servers, e.g. that it mounts the shared "
        "filesystem: {'jovial.fs': 'lustre'} becomes the constraint node.labels.jovial.fs==lustre.",
    )
    generic_resources = Union(
        [Dict(), Callable()],
        config=True,
        help="Countable node resources each server reserves, by the name nodes advertise them "
        "under (dockerd --node-generic-resource), e.g. {'NVIDIA-GPU': 1}.",
    )
    group_settings = Dict(
        config=True,
        help="Settings for members of a posix group: {'gpu-users': {'node_labels': {'gpu': 'true'}, "
        "'generic_resources': {'NVIDIA-GPU': 1}, 'mem_limit': '16G'}}. Keys: image, cpu_limit, "
        "cpu_guarantee, mem_limit, mem_guarantee, node_labels, generic_resources.",
    )
    user_settings = Dict(config=True, help="Settings for one user, same keys as group_settings: {'alice': {'cpu_limit': 4}}.")
    profiles = List(
        Dict(),
        config=True,
        help="Sizes offered in the spawn form, first is the default: [{'name': 'small', 'display_name': "
        "'Small: 1 core, 2 GB', 'cpu_limit': 1, 'mem_limit': '2G'}, {'name': 'gpu', 'groups': ['gpu-users'], "
        "'generic_resources': {'NVIDIA-GPU': 1}}]. Same keys as group_settings, plus name, display_name, groups.",
    )
    max_cpu_limit = Float(
        None, allow_none=True, config=True, help="Most cores a user may ask for with the cpu_limit option. None: the option is refused."
    )
    max_mem_limit = ByteSpecification(
        None, allow_none=True, config=True, help="Most memory a user may ask for with the mem_limit option. None: the option is refused."
    )

    check_server_port = Bool(
        True,
        config=True,
        help="Wait, from the hub, until a new server's port accepts connections before its start counts "
        "as done: a server that dies before it answers fails the spawn at once, with its last output. "
        "Needs the hub on the servers' network (as in docker-stack.yml); False: a server counts as "
        "started once it has run for 1 s.",
    )

    # --- idle servers (the culler is a hub service: stacks/jupyterhub_config.py) ----------------------
    cull_idle_timeout = Float(
        0.0,
        min=0.0,
        config=True,
        help="Seconds without activity after which the site's idle culler stops a server (its "
        "--timeout); 0: no culler. Jovial uses it only to tell the user, at her next start, that her "
        "previous server had been idle that long when it stopped.",
    )
    cull_max_age = Float(
        0.0,
        min=0.0,
        config=True,
        help="Seconds after which the site's idle culler stops a server however active (its --max-age); "
        "0: none. Used, like cull_idle_timeout, only for the note at the user's next start.",
    )

    # --- the watcher -------------------------------------------------------------------------------
    watch_interval = Float(
        5.0,
        config=True,
        help="Seconds between the watcher's lists of every Jovial service and task while no spawn is "
        "waiting and no server is on its way back (then it lists every second, for up to 2 minutes per server "
        "on its way back; Docker events trigger a list "
        "at once, at most every 0.5 s). "
        "The cost is 2 Docker API calls per list, whatever the number of servers.",
    )

    # --- the orchestrator: Swarm or Kubernetes (docs/kubernetes.md) ------------------------------------
    orchestrator = Enum(
        list(ORCHESTRATORS),
        "swarm",
        config=True,
        help="Where user servers run: 'swarm' (a Docker Swarm service each) or 'kubernetes' (a Pod, "
        "headless Service and ConfigMap each; needs the `jovial[kubernetes]` extra). Every other "
        "setting means the same on both; one that an orchestrator cannot honour stops the hub at "
        "start with a message naming it.",
    )
    kubernetes_namespace = Unicode(
        "",
        config=True,
        help="Kubernetes only: the namespace of user servers (the hub's RBAC role must be in it). "
        "Empty: the hub's own namespace (its service account's, or the KUBECONFIG context's).",
    )
    kubernetes_extended_resources = Dict(
        value_trait=Unicode(),
        default_value=DEFAULT_EXTENDED_RESOURCES,
        config=True,
        help="Kubernetes only: the extended resource name of each node resource in generic_resources, "
        "so that the same profiles work on both: {'NVIDIA-GPU': 'nvidia.com/gpu'}. A generic resource "
        "with no name here is refused at hub start.",
    )

"""Example JupyterHub configuration of a Jovial hub on Kubernetes (docs/kubernetes.md).

The same settings as on Swarm (stacks/jupyterhub_config.py), plus one: `orchestrator`. The hub
runs in the namespace `jovial` as the service account of stacks/kubernetes/rbac.yaml; user
servers run in the same namespace. Secrets come from Kubernetes Secrets mounted under /run/secrets.
"""

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)

# --- the hub and its proxy (a Deployment and Services of their own, see docs/kubernetes.md) -------
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = "http://hub.jovial.svc.cluster.local:8081"
c.JupyterHub.cleanup_servers = False  # user servers outlive hub restarts and are found again
c.JupyterHub.last_activity_interval = 30
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://proxy-api.jovial.svc.cluster.local:8001"
c.ConfigurableHTTPProxy.auth_token = open("/run/secrets/proxy_token").read().strip()

c.JupyterHub.authenticator_class = "jovial.authenticator.JovialLDAPAuthenticator"  # as on Swarm: never blocks the hub
c.LDAPAuthenticator.server_address = "ldap.example.org"
c.LDAPAuthenticator.server_port = 636
c.LDAPAuthenticator.tls_strategy = "on_connect"
c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=people,dc=example,dc=org"]
c.LDAPAuthenticator.allowed_groups = ["cn=astro,ou=groups,dc=example,dc=org"]

# --- Jovial: the one setting that moves user servers to Kubernetes -------------------------------
c.JupyterHub.spawner_class = "jovial"
c.JovialSpawner.orchestrator = "kubernetes"
c.JovialSpawner.kubernetes_namespace = "jovial"  # empty: the hub's own namespace
c.JovialSpawner.kubernetes_extended_resources = {"NVIDIA-GPU": "nvidia.com/gpu"}

# --- everything else exactly as on Swarm -------------------------------------------------------------
c.JovialSpawner.ldap_url = "ldaps://ldap.example.org"
c.JovialSpawner.ldap_user_base_dn = "ou=people,dc=example,dc=org"
c.JovialSpawner.ldap_group_base_dn = "ou=groups,dc=example,dc=org"
c.JovialSpawner.ldap_bind_dn = "cn=jovial-reader,dc=example,dc=org"
c.JovialSpawner.ldap_bind_password_file = "/run/secrets/ldap_bind_password"
c.JovialSpawner.shared_fs_root = "/lustre"  # mounted on the hub's node too (the hub makes homes)
c.JovialSpawner.home_path_template = "/lustre/home/{username}"
c.JovialSpawner.project_path_template = "/lustre/projects/{group}"
c.JovialSpawner.data_collections = [
    {"source": "/lustre/data/sdss-dr17", "target": "/data/sdss-dr17"},
    {"source": "/lustre/data/gaia-dr3", "target": "/data/gaia-dr3", "groups": ["gaia"]},
]
c.JovialSpawner.scratch_size = "4G"
c.JovialSpawner.node_labels = {"jovial.fs": "lustre"}  # kubectl label node NODE jovial.fs=lustre
c.JovialSpawner.image = "registry.example.org/jovial/singleuser:2026.11"
c.JovialSpawner.cpu_limit = 1.0
c.JovialSpawner.mem_limit = "2G"
c.JovialSpawner.profiles = [
    {"name": "small", "display_name": "Small: 1 core, 2 GB"},
    {"name": "large", "display_name": "Large: 8 cores, 32 GB", "cpu_limit": 8, "mem_limit": "32G"},
    {"name": "gpu", "display_name": "GPU", "groups": ["gpu-users"], "cpu_limit": 8, "mem_limit": "64G",
     "node_labels": {"gpu": "true"}, "generic_resources": {"NVIDIA-GPU": 1}},
]
c.JovialSpawner.start_timeout = 300

# Refuse, at hub start, settings Kubernetes cannot honour (e.g. network_name, watch_interval),
# naming each; keep this line last.
from jovial.spawner import JovialSpawner  # noqa: E402

JovialSpawner.check_config(c)

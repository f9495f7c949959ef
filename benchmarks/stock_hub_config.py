"""Hub configuration of the benchmarks' stock stack: Jovial's own configuration (same hub, same
proxy, same LDAP login, same image, network kind and limits), with the spawner swapped for stock
dockerspawner.SwarmSpawner, configured as a site would to run the same image on this swarm."""

load_subconfig("/etc/jovial/jupyterhub_config.py")  # noqa: F821 (provided by JupyterHub)
c = get_config()  # noqa: F821

jovial = c.JovialSpawner
c.JupyterHub.spawner_class = "dockerspawner.SwarmSpawner"
c.SwarmSpawner.image = jovial.image
c.SwarmSpawner.network_name = jovial.network_name
c.SwarmSpawner.prefix = "stock"  # its services are stock-<user>: never mistaken for Jovial's
c.SwarmSpawner.remove = True
c.SwarmSpawner.use_internal_ip = True  # route to the service on the overlay, publish no port
c.SwarmSpawner.extra_endpoint_spec = {"mode": "dnsrr"}  # our test machines' kernel has no IPVS (Swarm's VIP mode needs it)
c.SwarmSpawner.extra_placement_spec = {"constraints": [f"node.labels.{k}=={v}" for k, v in jovial.node_labels.items()]}
c.SwarmSpawner.cpu_limit = jovial.cpu_limit
c.SwarmSpawner.mem_limit = jovial.mem_limit
c.SwarmSpawner.start_timeout = jovial.start_timeout
# Stock gives a server http_timeout (default 30 s) to answer once its task runs; in a burst of 30 on
# two cores every server takes longer than that, and all of them fail. A site would raise it so:
c.SwarmSpawner.http_timeout = jovial.start_timeout
# Stock knows no LDAP identities: every server runs as one unprivileged uid with a scratch home.
# The stack's docker-proxy creates only services that look like Jovial's user servers
# (images/docker-proxy/jovial_docker_proxy/policy.py): a numeric uid:gid other than root, every
# capability dropped, Jovial's labels naming the service; it removes only services that carry them.
c.SwarmSpawner.extra_container_spec = {"user": "1000:1000", "cap_drop": ["ALL"]}
c.SwarmSpawner.environment = {"HOME": "/tmp"}
c.SwarmSpawner.notebook_dir = "/tmp"


def jovial_labels(spawner):
    """Stock's documented hook, run before each start: the labels that name the server's service."""
    spawner.extra_create_kwargs = {
        "labels": {
            "jovial.managed": "true",
            "jovial.object": spawner.object_name,
            "jovial.user": spawner.user.name,
            "jovial.server": spawner.name,
        }
    }


c.SwarmSpawner.pre_spawn_hook = jovial_labels

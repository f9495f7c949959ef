"""Jovial: JupyterHub user servers as Docker Swarm services, run as the user's LDAP identity.

The flow of one spawn, one module each: identity (who), spec (what, pure), storage (home on the
shared filesystem), backends (how: Swarm now, Kubernetes next), spawner (the JupyterHub face).
"""

__version__ = "0.1.0"

"""The Kubernetes backend: a pure builder (spec -> ConfigMap, Service, Pod), pure readers of pods
and events, one shared watcher, and the I/O client. Needs the `kubernetes` extra (kubernetes_asyncio)."""

from .client import KubernetesBackend, connect

__all__ = ["KubernetesBackend", "connect"]

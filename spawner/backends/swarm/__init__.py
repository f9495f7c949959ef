"""The Docker Swarm backend: a pure builder (spec -> service and config arguments) and an I/O client."""

from .client import SwarmBackend

__all__ = ["SwarmBackend"]

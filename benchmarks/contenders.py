"""The contenders and what one burst of N simultaneous starts produced for each of them."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HubContender:
    """A deployed hub stack: where users reach it, and its hub and docker-proxy services."""

    name: str
    url: str
    hub_service: str
    docker_proxy_service: str


@dataclass
class BurstResult:
    """One burst: N starts at once, then (for hubs) an idle window with N running, then N stops."""

    contender: str
    n: int
    ready_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop_seconds: float | None = None
    hub_cpu_seconds: float | None = None
    api_calls_during_starts: int | None = None
    api_calls_in_window: int | None = None
    window_seconds: float | None = None
    left_behind: list[str] = field(default_factory=list)

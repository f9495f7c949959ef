"""What the watcher knows: Jovial's pods by name and the events of each pod, as the API server's
lists and watches told them. Pure: the watcher feeds it, readers look things up.

Events are listed for every pod of the namespace (the API cannot select them by the pod's labels)
and kept by the pod's uid: a pod's events go when the pod goes, and events of pods that are not
Jovial's are dropped once they are older than ORPHAN_GRACE (an event may arrive before its pod).
"""

from collections.abc import Iterable, Mapping
from typing import Any

from .pods import Event, Pod, event_time

ORPHAN_GRACE = 60.0  # seconds


def _uid(obj: Mapping[str, Any]) -> str:
    uid: str = obj.get("metadata", {}).get("uid", "")
    return uid


class ClusterState:
    """Pods (by name) and events (by pod uid, then event name), with the time each event arrived."""

    def __init__(self) -> None:
        self.pods: dict[str, Pod] = {}
        self._events: dict[str, dict[str, tuple[float, Event]]] = {}
        self._pruned_at = 0.0

    def reset_pods(self, pods: Iterable[Pod], now: float) -> None:
        """A fresh list replaces everything known about pods."""
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.prune(now)

    def apply_pod(self, change: str, pod: Pod, now: float) -> None:
        name = pod["metadata"]["name"]
        if change != "DELETED":
            self.pods[name] = pod
            return
        if _uid(self.pods.get(name, {})) == _uid(pod):
            del self.pods[name]
        self._events.pop(_uid(pod), None)
        self.prune(now)

    def reset_events(self, events: Iterable[Event], now: float) -> None:
        self._events = {}
        for event in events:
            self.apply_event("ADDED", event, now)
        self.prune(now)

    def apply_event(self, change: str, event: Event, now: float) -> None:
        pod_uid = event.get("involvedObject", {}).get("uid", "")
        name = event["metadata"]["name"]
        if change == "DELETED":
            self._events.get(pod_uid, {}).pop(name, None)
        else:
            self._events.setdefault(pod_uid, {})[name] = (now, event)
        if now - self._pruned_at > ORPHAN_GRACE:
            self.prune(now)

    def events_of(self, pod_uid: str) -> list[Event]:
        """The pod's events, oldest first."""
        return sorted((e for _, e in self._events.get(pod_uid, {}).values()), key=event_time)

    def prune(self, now: float) -> None:
        """Forget events of pods that are not Jovial's (or are gone) and arrived over ORPHAN_GRACE ago."""
        self._pruned_at = now
        ours = {_uid(p) for p in self.pods.values()}
        for pod_uid in [u for u in self._events if u not in ours]:
            if max((t for t, _ in self._events[pod_uid].values()), default=0.0) < now - ORPHAN_GRACE:
                del self._events[pod_uid]

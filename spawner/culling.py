"""What the user is told after the site's idle culler stopped her server.

The culler (jupyterhub-idle-culler, a service of the hub; stacks/jupyterhub_config.py) stops a
server through the hub's REST API like any other stop, so the spawner cannot see who asked. It
sees how long the server had been idle, and running, when it stopped: at or past the site's limits,
the next start and the spawn form say so, in words that are true whoever stopped it. Pure.
"""

from datetime import datetime


def _span(seconds: float) -> str:
    """Seconds below 2 minutes, minutes below 2 hours, else hours (rounded)."""
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.0f} hours"


def why_it_stopped(
    now: datetime, started: datetime | None, last_activity: datetime | None, idle_limit: float, max_age: float
) -> str:
    """The note for the user's next start when the server that stops `now` had been idle (since
    `last_activity`) for `idle_limit` seconds or more, or running (since `started`) for `max_age`
    seconds or more; "" otherwise, or when the limit is 0 (off). Times are in one timezone."""
    if idle_limit and last_activity is not None and (idle := (now - last_activity).total_seconds()) >= idle_limit:
        return (f"Your previous server had been idle for {_span(idle)} when it stopped: this site stops "
                f"servers idle for {_span(idle_limit)}. Your files are kept.")
    if max_age and started is not None and (age := (now - started).total_seconds()) >= max_age:
        return (f"Your previous server had run for {_span(age)} when it stopped: this site stops servers "
                f"after {_span(max_age)}. Your files are kept.")
    return ""

"""The note a user gets at her next start when her server stopped past the site's culling limits."""

from datetime import datetime, timedelta

import pytest

from jovial.culling import why_it_stopped

NOW = datetime(2026, 12, 3, 12, 0)
HOUR = 3600.0


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("started", "last_activity", "idle_limit", "max_age", "note"),
    [
        (ago(5 * HOUR), ago(63 * 60), HOUR, 0,
         "Your previous server had been idle for 63 minutes when it stopped: this site stops servers idle for "
         "60 minutes. Your files are kept."),
        (ago(30 * HOUR), ago(60), HOUR, 24 * HOUR,
         "Your previous server had run for 30 hours when it stopped: this site stops servers after 24 hours. "
         "Your files are kept."),
        (ago(5 * HOUR), ago(59 * 60), HOUR, 0, ""),  # stopped before the limit: by her, say nothing
        (ago(5 * HOUR), ago(3 * HOUR), 0, 0, ""),  # no culler
        (ago(5 * HOUR), None, HOUR, 0, ""),  # no activity recorded
        (None, ago(60), HOUR, 24 * HOUR, ""),
        (ago(90), ago(61), 60, 0, "Your previous server had been idle for 61 seconds when it stopped: this site "
         "stops servers idle for 60 seconds. Your files are kept."),
    ],
)
def test_a_server_stopped_past_the_sites_limits_gets_a_note_that_is_true_whoever_stopped_it(
    started: datetime | None, last_activity: datetime | None, idle_limit: float, max_age: float, note: str
) -> None:
    assert why_it_stopped(NOW, started, last_activity, idle_limit, max_age) == note

"""The alarm_id of an occurrence: stable across releases (consumers keep it)."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given
from hypothesis import strategies as st

from daemon.lifecycle.transition import ALARM_NAMESPACE, alarm_id


def reference(cluster: str, fingerprint: str, starts_at: dt.datetime, incarnation: int) -> str:
    """The definition: uuid5 of cluster/fingerprint/startsAt in UTC to the millisecond."""
    iso = starts_at.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    name = f"{cluster}/{fingerprint}/{iso}" + (f"/{incarnation}" if incarnation > 1 else "")
    return str(uuid.uuid5(ALARM_NAMESPACE, name))


def test_a_known_alarm_id_does_not_change():
    starts = dt.datetime(2026, 1, 1, 0, 0, 7, tzinfo=dt.UTC)
    assert alarm_id("default", "0000000000000007", starts) == (
        "4b35b5d6-76c3-564a-9dfb-ca30eacdc1c0")


@given(cluster=st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
       fingerprint=st.text("0123456789abcdef", min_size=1, max_size=16),
       starts_at=st.datetimes(min_value=dt.datetime(1971, 1, 1),
                              max_value=dt.datetime(2200, 1, 1), timezones=st.sampled_from(
           [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
            dt.timezone(dt.timedelta(hours=-8))])),
       incarnation=st.integers(1, 5))
def test_alarm_id_is_uuid5_of_its_name(cluster, fingerprint, starts_at, incarnation):
    assert alarm_id(cluster, fingerprint, starts_at, incarnation) == reference(
        cluster, fingerprint, starts_at, incarnation)
    # The same instant written in another zone is the same occurrence.
    assert alarm_id(cluster, fingerprint, starts_at.astimezone(dt.UTC), incarnation) == (
        reference(cluster, fingerprint, starts_at, incarnation))

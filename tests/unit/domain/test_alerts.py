"""Alert ids: the UUIDv5 of the kind and the input's key, as stored ids were made."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.alerts import ALERT_NAMESPACE, MARGIN_CALL, STOP_TRIGGERED, alert_id


def test_alert_id_is_the_uuid5_of_kind_and_key() -> None:
    # An id stored before stays the id of the same input (replays add no second alert).
    assert alert_id(STOP_TRIGGERED, "stop:C1") == str(
        uuid.uuid5(ALERT_NAMESPACE, "STOP_TRIGGERED|stop:C1")
    )
    parsed = uuid.UUID(alert_id(MARGIN_CALL, "M0000001:1764892800000000000"))
    assert (parsed.version, parsed.variant) == (5, uuid.RFC_4122)


@given(kind=st.sampled_from([STOP_TRIGGERED, MARGIN_CALL, "X"]), key=st.text(max_size=60))
def test_alert_id_matches_uuid5_for_any_key(kind: str, key: str) -> None:
    try:
        expected = str(uuid.uuid5(ALERT_NAMESPACE, f"{kind}|{key}"))
    except UnicodeEncodeError:  # a lone surrogate: no id either way
        with pytest.raises(UnicodeEncodeError):
            alert_id(kind, key)
        return
    assert alert_id(kind, key) == expected

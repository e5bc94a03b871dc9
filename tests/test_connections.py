"""The connection cap derived from ``ulimit -n`` (gateway.web.connections); the behaviour over real sockets is in
tests/security/test_slow_clients.py."""

from __future__ import annotations

import pytest

from gateway.web.connections import RESERVED_FILES, ConnectionLimits, limits_for


@pytest.mark.parametrize(
    ("files", "cap", "batch"),
    [(1024, 704, 128), (256, 128, 32), (65536, 65536 - RESERVED_FILES - 256, 128), (64, 8, 8)],
)
def test_the_derived_cap_leaves_the_reserve_and_one_accept_batch(files: int, cap: int, batch: int) -> None:
    assert limits_for(10.0, 0, files, 20.0) == ConnectionLimits(
        header_timeout=10.0, send_timeout=20.0, max_connections=cap, accept_batch=batch
    )


def test_a_configured_cap_that_fits_is_kept() -> None:
    assert limits_for(5.0, 100, 1024).max_connections == 100


def test_a_configured_cap_that_does_not_fit_is_lowered_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert limits_for(5.0, 5000, 1024).max_connections == 704
    assert [r.getMessage() for r in caplog.records] == [
        "server.max_connections = 5000 does not fit under ulimit -n 1024: capped at 704"
    ]

"""The suspicious-use rules alone: pure functions of what was seen and ``now``."""

from __future__ import annotations

from gateway.alerts import webhooks
from gateway.alerts.detect import Baselines, Cooldown, IssuedIndex, KeyRates, hour_mask, outsider, usual_hours
from gateway.store.base import Baseline

HOUR = 3600.0
DAY = 86400.0
T = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # midnight UTC


def test_a_redemption_is_outsider_use_only_from_a_network_never_issued_to() -> None:
    index = IssuedIndex()
    assert index.add("gwk_a", 100, "192.0.2.0/24") and not index.add("gwk_a", 100, "192.0.2.0/24")
    assert not outsider("192.0.2.0/24", index.networks("gwk_a", 100))
    assert outsider("198.51.100.0/24", index.networks("gwk_a", 100))
    assert outsider("192.0.2.0/24", index.networks("gwk_a", 101))  # another token of the same key
    index.expire(now=101)
    assert len(index) == 0


def test_unusual_networks_and_hours_count_only_after_the_learning_period() -> None:
    baselines = Baselines(learning_seconds=7 * DAY)
    assert baselines.unusual("eve", "192.0.2.0/24", T + 9 * HOUR) == []  # first sight: learnt
    assert baselines.unusual("eve", "198.51.100.0/24", T + 3 * HOUR) == []  # still learning
    later = T + 8 * DAY
    assert baselines.unusual("eve", "192.0.2.0/24", later + 9 * HOUR) == []
    assert baselines.unusual("eve", "203.0.113.0/24", later + 9 * HOUR) == ["new-network"]
    assert baselines.unusual("eve", "192.0.2.0/24", later + 22 * HOUR) == ["unusual-hour"]
    assert baselines.unusual("eve", "192.0.2.0/24", later + DAY + 22 * HOUR) == []  # learnt as it was seen


def test_baselines_adopt_what_other_replicas_learnt() -> None:
    baselines = Baselines(learning_seconds=0)
    baselines.unusual("eve", "192.0.2.0/24", T)
    stored = Baseline("eve", {"198.51.100.0/24": T - DAY}, hour_mask([5]), T - DAY, 10)
    baselines.adopt([stored])
    known = baselines.known["eve"]
    assert set(known.networks) == {"192.0.2.0/24", "198.51.100.0/24"}
    assert usual_hours(known.hours) == [0, 5] and known.first_seen == T - DAY and known.issuances == 11
    assert [b.principal_id for b in baselines.take_seen()] == ["eve"] and baselines.take_seen() == []


def test_a_rate_spike_needs_an_hour_of_history_the_floor_and_the_factor() -> None:
    rates = KeyRates(factor=10, floor=20)
    now = T
    for _ in range(60):  # an hour of 2 a minute
        for _ in range(2):
            assert rates.add("gwk_a", now) is None
        now += 60
    for _ in range(30):  # 30 in one minute: above the floor (20) and 10 x the mean (~1.3)
        rates.add("gwk_a", now)
    spike = rates.add("gwk_a", now + 60)  # the next minute closes it
    assert spike is not None and (spike.kid, spike.per_minute) == ("gwk_a", 30)
    assert 1.0 < spike.baseline < 2.0
    assert rates.rates(now + 61) == [30.0]


def test_no_spike_for_a_new_key_however_busy() -> None:
    rates = KeyRates(factor=10, floor=20)
    for _ in range(500):
        rates.add("gwk_new", T)
    assert rates.add("gwk_new", T + 60) is None


def test_one_alert_per_kind_and_subject_per_cooldown() -> None:
    cooldown = Cooldown(3600)
    assert cooldown.ready("outsider", "gwk_a 192.0.2.0/24", T)
    assert not cooldown.ready("outsider", "gwk_a 192.0.2.0/24", T + 3599)
    assert cooldown.ready("outsider", "gwk_a 198.51.100.0/24", T + 1)
    assert cooldown.ready("rate", "gwk_a 192.0.2.0/24", T + 1)
    assert cooldown.ready("outsider", "gwk_a 192.0.2.0/24", T + 3600)


def test_webhook_signature_known_answer_and_backoff() -> None:
    # HMAC-SHA256("secret", "1800000000." + body), computed independently with openssl:
    #   printf '1800000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac secret
    header = webhooks.sign([b"secret"], 1_800_000_000, b'{"id":"evt_1"}')
    assert header == "t=1800000000,v1=5847cdad07809eddc3ac6ac8796d56ab2884e2b0831aa11ebd49b6c942021281"
    assert webhooks.verify_signature(header, b'{"id":"evt_1"}', b"secret", now=1_800_000_299)
    assert not webhooks.verify_signature(header, b'{"id":"evt_1"}', b"secret", now=1_800_000_301)
    assert [webhooks.backoff(n, 2.0) for n in (1, 2, 3, 12, 13)] == [2.0, 4.0, 8.0, 3600.0, 3600.0]

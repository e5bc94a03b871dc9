"""deploy/grafana/ and deploy/prometheus/: every metric a panel or an alert rule queries is one the live app exports,
with the labels the query uses, and Prometheus's own ``promtool check rules`` accepts the rules.

The app is scraped after real traffic (issuance allowed and refused, /v1/verify, a rate-limit trip, revocations of
each kind, a webhook endpoint with deliveries waiting), so the series exist as an operator's Prometheus sees them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.audit.publisher import publish_last
from gateway.config import Config, load_config
from gateway.model import Permission, PrincipalKind, Visibility
from gateway.services import Services
from gateway.store.base import AuditQuery
from tests.conftest import require_service
from tests.support import ADMIN, World, init_data_dir

DEPLOY = Path(__file__).parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "media-gateway.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "media-gateway.json"
# Added by Prometheus itself, never by an exporter.
SCRAPE_LABELS = {"instance", "job"}
PROMETHEUS_SERIES = {"up"}
_FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "abs", "clamp_min",
    "clamp_max", "topk", "bottomk", "label_values", "absent", "delta", "deriv", "quantile",
}  # fmt: skip


# --- reading PromQL -------------------------------------------------------------------------------


def selectors(expr: str) -> list[tuple[str, set[str], set[str]]]:
    """(metric, labels its matchers name, labels the expression groups by) for each metric an expression reads.

    A small reader for the PromQL these files use: strings emptied, ranges dropped, ``by (…)`` lists and
    ``{…}`` matchers read off, and what is left that is a name and no function is a metric.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    grouped: set[str] = set()
    for names in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        grouped |= {name.strip() for name in names.split(",") if name.strip()}
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    found: list[tuple[str, set[str], set[str]]] = []
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?(\s*\()?", text):
        name, matchers, call = match.groups()
        if call or name in _FUNCTIONS or name.startswith("$"):
            continue
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        found.append((name, labels, grouped))
    return found


def test_the_promql_reader_reads_what_these_files_write() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(gateway_x_bucket{instance=~"$instance",a="b"}'
        "[$__rate_interval]))) / ignoring(kind) sum(up) > 2"
    )
    assert selectors(expr) == [
        ("gateway_x_bucket", {"instance", "a"}, {"le", "kind"}),
        ("up", set(), {"le", "kind"}),
    ]


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    found = {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"]).groups()  # type: ignore[union-attr]
            found[f"${variable['name']}"] = f'{metric}{{{label}!=""}}'
    return found


# --- the live app ---------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    init_data_dir(tmp_path)
    secret = tmp_path / "keys" / "webhook.secret"
    secret.write_text("a-webhook-secret-of-some-length\n")
    secret.chmod(0o600)
    with (tmp_path / "gateway.toml").open("a") as toml:
        toml.write(
            "\n[limits]\nprincipal_rate = 1\nprincipal_burst = 3\nsync_every = 60\n"
            '\n[webhooks]\nbackoff = 3600\n\n[webhooks.ops]\nurl = "http://127.0.0.1:9/hook"\n'
            'secret_file = "keys/webhook.secret"\n'
        )
    return load_config(tmp_path, environ={})


@pytest.fixture
async def exported(world: World, client: TestClient, services: Services) -> AsyncIterator[dict[str, set[str]]]:
    """Every series name /metrics has after real traffic, with the label names its samples carry."""
    await _traffic(world, client)
    await services.sampler.sample()  # checkpoint age and webhook backlog, as the 15 s sampler reads them
    response = await client.get("/metrics")
    assert response.status == 200
    yield _series(await response.text())


async def _traffic(world: World, client: TestClient) -> None:
    await world.principal("web", Permission.SIGN, Permission.SIGN_ON_BEHALF)
    await world.principal("eve", Permission.SIGN, kind=PrincipalKind.ENGINEER)
    await world.media("pub", visibility=Visibility.PUBLIC)
    await world.media("m1")
    auth = world.auth("web")
    urls = []
    for media in ("pub", "m1", "pub", "pub"):  # issued, denied, issued, then over the burst: 429
        response = await client.post("/v1/sign", json={"media_id": media, "rendition": "video"}, headers=auth)
        urls.append((response.status, await response.json()))
    assert [status for status, _ in urls] == [200, 403, 200, 429]
    uri = urls[0][1]["url"].removeprefix("https://cdn.example.com")
    for presented in (uri, uri.replace("gw_sig=", "gw_sig=A")):
        await client.get("/v1/verify", headers={"X-Original-URI": presented})
    # Redeemed from a network it was never issued to: outsider use, decided after its grace period.
    await client.get("/v1/verify", headers={"X-Original-URI": uri, "X-Forwarded-For": "198.51.100.7"})
    await world.services.behind.flush()  # redemptions are written behind: detection works from what is written
    services, admin, now = world.services, world.services.admin, world.clock()
    await services.behind.flush()  # redemptions are written behind (within a second): the watcher reads the log
    grant = await admin.add_grant(ADMIN, "eve", "m1", "incident", 600, now)
    await admin.revoke_grant(ADMIN, grant.id, now)
    await admin.revoke_links(ADMIN, "pub", "test", now)
    await admin.disable_principal(ADMIN, "eve", now)
    await admin.revoke_key(ADMIN, urls[0][1]["kid"], "test", now)  # an event for the webhook
    world.clock.advance(5)
    await services.watcher.step(world.clock())  # (or the app's own watcher, if its tick came first)
    assert len(await services.store.audit.search(AuditQuery(event="alert:outsider_use"))) == 1
    await services.outbox.feed(world.clock())
    assert await services.outbox.deliver_due(world.clock())  # to a closed port: failed, retried in an hour
    await publish_last(services.store, services.checkpointer, services.clock)


def _series(text: str) -> dict[str, set[str]]:
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for name in _names(family.name, family.type):
            series.setdefault(name, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def _names(family: str, kind: str) -> list[str]:
    if kind == "counter":
        return [f"{family}_total"]
    if kind == "histogram":
        return [f"{family}_bucket", f"{family}_sum", f"{family}_count"]
    return [family]


@pytest.fixture(params=["rules", "dashboard"])
def expressions(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    yield rule_expressions() if request.param == "rules" else dashboard_expressions()


def test_every_queried_metric_and_label_is_exported(exported: dict[str, set[str]], expressions: dict[str, str]) -> None:
    assert expressions
    missing: dict[str, list[str]] = {}
    for where, expr in expressions.items():
        read = selectors(expr)
        assert read, f"{where}: no metric in {expr!r}"
        labels_here: set[str] = set()
        for metric, matched, _ in read:
            if metric in PROMETHEUS_SERIES:
                continue
            if metric not in exported:
                missing.setdefault(where, []).append(metric)
                continue
            labels_here |= exported[metric]
            unknown = matched - exported[metric] - SCRAPE_LABELS
            missing.setdefault(where, []).extend(f"{metric}{{{label}}}" for label in sorted(unknown))
        grouped = read[0][2] - labels_here - SCRAPE_LABELS
        missing.setdefault(where, []).extend(f"by ({label})" for label in sorted(grouped))
    assert {where: gaps for where, gaps in missing.items() if gaps} == {}


def test_the_series_the_panels_chart_have_samples_after_that_traffic(exported: dict[str, set[str]]) -> None:
    """Not just declared: each carries the labels a panel splits it by."""
    assert {"outcome", "reason", "profile"} <= exported["gateway_issuance_total"]
    assert {"decision", "reason"} <= exported["gateway_verify_total"]
    assert "kind" in exported["gateway_revocation_propagation_seconds_bucket"]
    assert "scope" in exported["gateway_rate_limited_total"]
    assert "kind" in exported["gateway_alerts_total"]
    assert "outcome" in exported["gateway_webhook_deliveries_total"]
    for name in ("gateway_audit_pending_records", "gateway_webhook_backlog", "gateway_checkpoint_age_seconds",
                 "gateway_state_view_age_seconds", "gateway_audit_commit_seconds_bucket"):  # fmt: skip
        assert name in exported, name


async def test_a_revocation_is_timed_from_its_commit_to_the_view(world: World, client: TestClient) -> None:
    """Applied by the replica that made it (its own change feed), at once: observed as 0 s, per kind."""
    await _traffic(world, client)
    text = await (await client.get("/metrics")).text()
    counts = {
        sample.labels["kind"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_revocation_propagation_seconds_count"
    }
    assert counts == {"grant": 1.0, "links": 1.0, "principal": 1.0, "key": 1.0}
    assert 'gateway_revocation_propagation_seconds_bucket{kind="key",le="0.005"} 1.0' in text


def test_the_dashboard_is_one_grafana_dashboard_on_a_chosen_prometheus() -> None:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
    titles = {panel["title"] for panel in board["panels"]}
    assert {"Issuance rate", "Issuance refusals by reason", "/v1/verify refusals by reason", "Audit commit latency",
            "Audit backlog and group size", "State view age (staleness)", "Revocation propagation",
            "Webhook backlog and deliveries", "Rate-limit trips"} <= titles  # fmt: skip


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        require_service("promtool (apt-get install -y prometheus)")
    assert promtool is not None
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in done.stdout

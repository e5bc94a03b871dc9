"""gatewayctl doctor: is this deployment fit to serve? One line per check, exit 1 if any failed.

Checks, in order (a failed configuration skips the rest): the configuration;
owner-only key and secret files; the master key kept apart from the
database; the store (reachable, schema current); the database's clock
against ours; that every viewer's sealed audit fields still have their key
(or the log records the viewer's erasure); where checkpoints are exported (the directory writable, kept
off the database's disk; the S3 bucket reachable with Object Lock); webhook
secrets; who may scrape /metrics; and, given ``--nginx-config``, ``nginx -t``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway import redact
from gateway.alerts.outbox import load_endpoints
from gateway.cli import context
from gateway.cli.output import print_lines, printable
from gateway.config import CONFIG_FILE, Config
from gateway.errors import GatewayError
from gateway.store import is_postgres, open_store
from gateway.store.base import Store

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
_SKEW_WARN = 1.0
_SKEW_FAIL = 5.0  # well inside the 30 s JWTs tolerate and the 60 s the verifier allows between replicas


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def _mode_check(name: str, path: Path, directory: bool = False) -> Check:
    try:
        info = path.stat()
    except FileNotFoundError:
        return Check(name, FAIL, f"{path} is missing")
    except OSError as exc:
        return Check(name, FAIL, f"{path}: {exc.strerror}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Check(name, FAIL, f"{path} is mode {mode:04o}: others can read it (chmod {700 if directory else 600})")
    if info.st_uid != os.geteuid():
        return Check(name, WARN, f"{path} ({mode:04o}) belongs to uid {info.st_uid}, not this user")
    return Check(name, OK, f"{path} ({mode:04o})")


def secret_files(config: Config) -> Iterator[tuple[str, Path]]:
    """Every file the gateway reads a secret from, by the setting (or role) that names it."""
    if config.master_key_backend == "local" or config.master_key_path.exists():
        yield "master key", config.master_key_path
    yield "log-signing key", config.log_signing_key_path
    if config.dev_idp_key_path.exists():
        yield "development IdP key", config.dev_idp_key_path
    for credential in sorted((config.keys_dir / "credentials").glob("*.json")):
        yield "credential", credential
    for profile in config.profiles:
        if profile.secret_file:
            yield f"profiles.{profile.name}.secret_file", config.data_path(profile.secret_file)
    if config.tls_key_file:
        yield "tls.key_file", config.data_path(config.tls_key_file)
    for endpoint in config.webhooks:
        yield f"webhooks.{endpoint.name}.secret_file", config.data_path(endpoint.secret_file)
    if config.metrics_token_file:
        yield "metrics.token_file", config.data_path(config.metrics_token_file)
    if config.edge_token_file:
        yield "edge.token_file", config.data_path(config.edge_token_file)


def file_checks(config: Config) -> list[Check]:
    checks = [_mode_check("keys directory", config.keys_dir, directory=True)]
    checks += [_mode_check(name, path) for name, path in secret_files(config)]
    return checks


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


def separation_checks(config: Config) -> list[Check]:
    """What docs/operations.md asks: the master key and the exports not where the database is."""
    checks: list[Check] = []
    database = None if is_postgres(config) else config.sqlite_path
    if config.master_key_backend == "local" and database is not None and _same_disk(config.master_key_path, database):
        advice = "mount keys/ from a secret, or use master_key.backend = kms"
        detail = f"keys/master.key is on the database's disk: whoever copies the volume has both ({advice})"
        checks.append(Check("master key apart", WARN, detail))
    elif config.master_key_backend == "kms":
        checks.append(Check("master key apart", OK, "AWS KMS holds the master key"))
    return checks


def export_checks(config: Config) -> list[Check]:
    checks: list[Check] = []
    directory = config.export_dir
    if directory is None and not config.audit_s3_bucket:
        return [Check("checkpoint export", WARN, "off: audit.export_dir and audit.s3_bucket are empty")]
    if directory is not None:
        checks.append(_directory_check(directory, config))
    if config.audit_s3_bucket:
        checks.append(_s3_check(config))
    return checks


def _directory_check(directory: Path, config: Config) -> Check:
    if not directory.exists():  # doctor creates nothing: the first checkpoint makes it
        return _future_directory_check(directory)
    probe = directory / f".doctor-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("checkpoint export", FAIL, f"{directory}: cannot write: {exc.strerror}")
    database = None if is_postgres(config) else config.sqlite_path
    if database is not None and _same_disk(directory, database):
        return Check("checkpoint export", WARN, f"{directory} is writable but on the database's disk: "
                     "mount it from another machine (or use audit.s3_bucket)")  # fmt: skip
    return Check("checkpoint export", OK, f"{directory} is writable")


def _future_directory_check(directory: Path) -> Check:
    parent = next(p for p in directory.parents if p.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check("checkpoint export", FAIL, f"{directory} does not exist, and {parent} is not writable")
    return Check("checkpoint export", WARN, f"{directory} does not exist yet (the first checkpoint creates it)")


def _s3_check(config: Config) -> Check:
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3", endpoint_url=config.audit_s3_endpoint_url or None, region_name=config.audit_s3_region,
        config=BotoConfig(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}),
    )  # fmt: skip
    bucket = config.audit_s3_bucket
    try:
        lock = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except (BotoCoreError, ClientError) as exc:
        return Check("checkpoint export (S3)", FAIL, f"s3://{bucket}: {exc}")
    if lock.get("ObjectLockEnabled") != "Enabled":
        return Check("checkpoint export (S3)", FAIL, f"s3://{bucket} has no Object Lock")
    return Check("checkpoint export (S3)", OK, f"s3://{bucket} reachable, Object Lock enabled")


async def store_checks(config: Config, clock: Callable[[], float] = time.time) -> list[Check]:
    where = "PostgreSQL" if is_postgres(config) else str(config.sqlite_path)
    try:
        store = await open_store(config)
    except GatewayError as exc:
        return [Check("store", FAIL, exc.message), Check("clock", SKIP, "no store")]
    try:
        await store.ping()
        version = _schema_version(config)
        checks = [Check("store", OK, f"{where} reachable, schema v{version} (this gateway's)")]
        checks.append(await _clock_check(store.database_time, clock, is_postgres(config)))
        checks.append(await _subject_keys_check(store))
    except GatewayError as exc:
        checks = [Check("store", FAIL, exc.message)]
    finally:
        await store.close()
    return checks


_SHOWN = 5


async def _subject_keys_check(store: Store) -> Check:
    """Every viewer whose fields the audit log holds sealed still has its key, or the log records the erasure."""
    lost = await store.subjects.unkeyed(_SHOWN + 1)
    if not lost:
        return Check("subject keys", OK, "every sealed audit field has its key, or its subject's erasure on record")
    named = ", ".join(f"{ref} (from record #{first})" for ref, first in lost[:_SHOWN])
    more = " and more" if len(lost) > _SHOWN else ""
    return Check("subject keys", FAIL, f"audit key missing with no erasure on record (subject_keys altered by hand?): "
                 f"{named}{more}; their personal fields are unreadable: restore the keys from a backup")  # fmt: skip


def _schema_version(config: Config) -> int:
    # open_store refuses any other version, so the store is at this gateway's
    if is_postgres(config):
        from gateway.store.postgres import SCHEMA_VERSION as POSTGRES

        return POSTGRES
    from gateway.store.sqlite.schema import SCHEMA_VERSION as SQLITE

    return SQLITE


async def _clock_check(
    database_time: Callable[[], Awaitable[float]], clock: Callable[[], float], remote: bool
) -> Check:
    before = clock()
    theirs = await database_time()
    ours = (before + clock()) / 2
    skew = theirs - ours
    if not remote:
        return Check("clock", OK, "SQLite: the database uses this host's clock")
    text = f"database clock {skew:+.3f} s from ours"
    if abs(skew) >= _SKEW_FAIL:
        return Check("clock", FAIL, f"{text}: run NTP on both (tokens and URLs are checked against the clock)")
    return Check("clock", WARN if abs(skew) >= _SKEW_WARN else OK, text)


def webhook_checks(config: Config) -> list[Check]:
    if not config.webhooks:
        return [Check("webhooks", SKIP, "no [webhooks.NAME] endpoints")]
    try:
        endpoints = load_endpoints(config)
    except GatewayError as exc:
        return [Check("webhooks", FAIL, exc.message)]
    insecure = [e.name for e in endpoints if not e.url.startswith("https://")]
    if insecure:
        return [Check("webhooks", WARN, f"{len(endpoints)} endpoint(s); not HTTPS: {', '.join(insecure)}")]
    return [Check("webhooks", OK, f"{len(endpoints)} endpoint(s), secrets readable")]


def metrics_checks(config: Config) -> list[Check]:
    if not config.metrics_enabled:
        return [Check("metrics", SKIP, "metrics.enabled = false")]
    wide = [str(n) for n in config.metrics_allow if not n.is_loopback and not n.is_private]
    if wide and not config.metrics_token_file:
        return [Check("metrics", WARN, f"/metrics open to {', '.join(wide)} without metrics.token_file")]
    guard = "a bearer token" if config.metrics_token_file else "no token"
    return [Check("metrics", OK, f"/metrics for {', '.join(map(str, config.metrics_allow))}, {guard}")]


def nginx_check(path: Path, nginx: str) -> Check:
    binary = shutil.which(nginx)
    if binary is None:
        return Check("nginx", FAIL, f"{nginx} not found")
    done = subprocess.run([binary, "-t", "-q", "-e", "stderr", "-c", str(path.resolve())],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        cause = [line for line in lines if "[emerg]" in line or "[alert]" in line] or lines
        return Check("nginx", FAIL, cause[0] if cause else f"nginx -t exited {done.returncode}")
    return Check("nginx", OK, f"{path}: syntax ok")


def config_check(args: argparse.Namespace, config: Config) -> Check:
    path = context.config_file(args) or config.data_dir / CONFIG_FILE
    if not path.is_file():  # only the default may be absent (context.load): built-in defaults, environment
        detail = f"{path} does not exist: built-in defaults and GATEWAY_ variables ('gatewayctl init' writes one)"
        return Check("config", WARN, detail)
    return Check("config", OK, f"{path} ({config.environment})")


async def run_checks(args: argparse.Namespace) -> list[Check]:
    try:
        config = context.load(args)
    except GatewayError as exc:
        return [Check("config", FAIL, exc.message)]
    checks = [config_check(args, config)]
    checks += file_checks(config) + separation_checks(config)
    checks += await store_checks(config)
    checks += await asyncio.to_thread(export_checks, config)
    checks += webhook_checks(config) + metrics_checks(config)
    if args.nginx_config:
        checks.append(await asyncio.to_thread(nginx_check, Path(args.nginx_config), args.nginx))
    return checks


def run_doctor(args: argparse.Namespace) -> int:
    checks = [Check(c.name, c.status, redact.text(c.detail)) for c in asyncio.run(run_checks(args))]
    if args.json:
        json.dump([asdict(c) for c in checks], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_lines([f"{c.status:<4} {c.name}: {printable(c.detail)}" for c in checks])
    return 1 if any(c.status == FAIL for c in checks) else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reading = context.common_parser(actor=False)  # commands that change nothing: no --actor
    doctor = sub.add_parser(
        "doctor", parents=[reading], help="check this deployment: config, key files, store, clock, exports, nginx",
        description="One line per check (ok, warn, FAIL, skip); exit 1 if any check failed, 0 otherwise. "
        "Checks the configuration, that key and secret files are owner-only, the master key kept apart from "
        "the database, the store (reachable, schema current), the database clock against this host's, that "
        "every viewer's sealed audit fields still have their key (or an erasure on record), that checkpoints "
        "can be exported, webhook secrets, who may scrape /metrics, and nginx -t.",
    )  # fmt: skip
    doctor.add_argument("--nginx-config", metavar="FILE", help="also check this nginx configuration (nginx -t -c FILE)")
    doctor.add_argument("--nginx", default="nginx", help="the nginx binary for --nginx-config (default: nginx)")
    doctor.set_defaults(func=run_doctor, sync=True)

"""gatewayctl sign / verify: the dialects offline, for engineers debugging a 403.

No server, database or data directory: a key file, a URL and a time. Verify
applies the gateway verifier's first gate too (a non-canonical path is
refused before any dialect reads the URL), so it never calls valid a URL the
gateway refuses for its spelling. It cannot know about link revocations or
key state: it shows the signed issue time, where the format has one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gateway.cli.output import emit, when
from gateway.cli.timeparse import instant_argument
from gateway.errors import InvalidInput, VerificationFailed
from gateway.keys.material import KeyMaterial
from gateway.signing.dialects import default_registry
from gateway.signing.dialects.base import Dialect, Redemption, SignRequest
from gateway.signing.paths import path_problem, url_path

EXIT_INVALID = 1

REASONS = {
    "non-canonical-path": "non-canonical path: the gateway verifies only the one canonical spelling of a path "
    "(docs/paths.md)",
    "expired": "expired: the URL's expiry time has passed",
    "not-yet-valid": "not yet valid: its start time is in the future",
    "bad-signature": "bad signature: the URL was changed, or signed with another key",
    "bad-signature-or-wrong-ip": "bad signature or wrong IP: the format binds the client IP into the hash, "
    "so a wrong IP and a forged URL look the same",
    "wrong-ip": "wrong IP: the client address is not the one the URL is bound to",
    "outside-prefix": "outside the signed prefix: the path is not under the signed resource/prefix",
    "unknown-key": "unknown key id: the URL names a different key than the one given",
    "malformed": "malformed: signature parameters are missing, repeated or unparsable",
    "unattributable": "no principal: the URL carries no gateway key id",
    "wrong-scope": "wrong credential scope: signed for another date, region or service (S3 SigV4)",
}


def _key_help() -> str:
    lines = ["key files, per dialect:"]
    for dialect in default_registry().all():
        doc = (dialect.load_key.__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {dialect.name:11} {doc}")
    return "\n".join(lines)


def _options(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--option takes NAME=VALUE, got {pair!r}")
        options[name] = value
    return options


def _load(args: argparse.Namespace) -> tuple[Dialect, KeyMaterial]:
    dialect = default_registry().get(args.dialect)
    return dialect, dialect.load_key(_key_file(args), args.key_id)


def _key_file(args: argparse.Namespace) -> bytes:
    try:
        return Path(args.key_file).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read --key-file: {exc}") from None


def run_sign(args: argparse.Namespace) -> int:
    dialect, key = _load(args)
    if key.secret is None:
        raise InvalidInput(
            f"--key-file {args.key_file} holds a public key: signing needs the private key (a public key only verifies)"
        )
    request = SignRequest(
        url=args.url,
        expires=args.expires,
        starts=args.starts,
        ip=args.ip,
        prefix=args.prefix,
        attribution=args.attribution,
        issued_at=args.issued_at if args.issued_at is not None else int(time.time()),
        options=_options(args.option),
    )
    signed = dialect.sign(request, key)
    if args.cookie:
        if not signed.cookies:
            raise InvalidInput(f"{dialect.name} gives no cookies for this request (a prefix may be needed)")
        text = [f"Set-Cookie: {n}={v}; Secure; HttpOnly" for n, v in signed.cookies.items()]
        emit({"cookies": dict(signed.cookies)}, as_json=args.json, text=text)
    else:
        emit({"url": signed.url, "cookies": dict(signed.cookies)}, as_json=args.json, text=signed.url)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    dialect = default_registry().get(args.dialect)
    data = _key_file(args)
    now = args.now if args.now is not None else time.time()
    cookies = dict(c.partition("=")[::2] for c in args.cookie or [])
    redemption = Redemption(args.url, now, args.ip, cookies, _options(args.option))
    problem = path_problem(url_path(args.url))
    try:
        if problem is not None:
            raise VerificationFailed("non-canonical-path")
        presented = dialect.presented_key_id(redemption)
        if presented is not None and args.key_id and presented != args.key_id:
            raise VerificationFailed("unknown-key")
        # Without --key-id, the key is the one the URL names (CloudFront's Key-Pair-Id, Cloud CDN's KeyName …).
        verified = dialect.verify(redemption, dialect.load_key(data, args.key_id or presented))
    except VerificationFailed as exc:
        message = REASONS.get(exc.reason, exc.reason) + (f": {problem}" if problem else "")
        emit(
            {"valid": False, "reason": exc.reason, "message": message},
            as_json=args.json,
            text=f"invalid: {message}",
        )
        return EXIT_INVALID
    result = {
        "valid": True,
        "expires": verified.expires,
        "key_id": verified.key_id,
        "attribution": verified.attribution,
        "issued_at": verified.issued_at,
    }
    text = f"valid until {when(verified.expires)} (key {verified.key_id or verified.attribution or '-'})"
    if verified.issued_at is not None:
        text += f", issued {when(verified.issued_at)}"
    emit(result, as_json=args.json, text=text)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    names = ", ".join(default_registry().names())
    sign = sub.add_parser(
        "sign", help="sign a URL offline in any dialect (no server needed)",
        epilog=_key_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Print a signed URL (or cookies) for one of: {names}.",
    )  # fmt: skip
    _shared(sign)
    sign.add_argument("--expires", type=int, required=True, metavar="EPOCH", help="expiry, Unix seconds")
    sign.add_argument("--starts", type=int, metavar="EPOCH", help="not before (where the format has it)")
    sign.add_argument(
        "--issued-at", type=int, metavar="EPOCH", help="issue time (native gw_iat, WMSAuth server_time); default: now"
    )
    sign.add_argument("--ip", metavar="CIDR", help="bind to a client address or network")
    sign.add_argument("--prefix", metavar="PATH", help="cover every URL under this path (e.g. /v/abc/)")
    sign.add_argument("--cookie", action="store_true", help="print signed cookies instead of a URL")
    sign.add_argument("--attribution", metavar="KID", help="gateway key id for shared-secret formats")
    sign.set_defaults(func=run_sign, sync=True)
    verify = sub.add_parser(
        "verify", help="verify a signed URL offline and say exactly why it fails",
        epilog=_key_help() + "\n\nexit status: 0 valid, 1 invalid (the reason is printed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Check a signed URL of one of: {names}.",
    )  # fmt: skip
    _shared(verify)
    verify.add_argument(
        "--now",
        type=instant_argument,
        metavar="TIME",
        help="evaluate at this time, epoch seconds or ISO 8601 (default: now)",
    )
    verify.add_argument("--ip", help="the client address the request came from")
    verify.add_argument("--cookie", action="append", metavar="NAME=VALUE", help="a cookie sent with the request")
    verify.set_defaults(func=run_verify, sync=True)


def _shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dialect", required=True, help="native, cloudfront, google-cdn, media-cdn, akamai, ...")
    parser.add_argument(
        "--key-file", required=True, metavar="FILE", help="the signing key; its form per dialect is listed below"
    )
    parser.add_argument(
        "--key-id", metavar="ID",
        help="Key-Pair-Id, KeyName or gw_kid, for formats that name keys (verify: default the one the URL names)",
    )  # fmt: skip
    parser.add_argument("--url", required=True, help="the full URL (to verify: as the client requested it)")
    option_help = "dialect option, e.g. hash_algorithm=SHA256 (cloudfront), expression=... (nginx)"
    parser.add_argument("--option", action="append", metavar="NAME=VALUE", help=option_help)
    parser.add_argument("--json", action="store_true", help="machine-readable output")

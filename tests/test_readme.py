"""The README's walk-through, run as written (issue 19, items 14 and 15): a newcomer copies it into a shell
next to ``gatewayctl serve`` and nothing needs guessing — the key id, the signed URL's path and the
``media put`` alternative are all spelt out. The only change made here: the server's port, free on this
machine instead of 8080."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from examples.demo.stack import free_port
from gateway.cli.main import build_parser

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent  # the environment's gatewayctl, as `. .venv/bin/activate` puts it on PATH


def _walkthrough() -> str:
    section = (ROOT / "README.md").read_text().split("## Walk-through")[1].split("\n## ")[0]
    [block] = re.findall(r"```sh\n(.*?)```", section, re.S)
    return str(block)


def test_every_gatewayctl_command_in_the_walkthrough_parses() -> None:
    text = _walkthrough()
    lines = text.splitlines()
    [at] = [i for i, line in enumerate(lines) if "gatewayctl media put" in line]
    written = lines[at][lines[at].index("gatewayctl media put") :] + " " + lines[at + 1].lstrip("# ")
    put = shlex.split(written.rstrip(")"))
    build_parser().parse_args(put[1:])  # the alternative to step 2, complete: --workspace included
    assert "--workspace" in put and "--owner" in put
    for line in text.splitlines():
        if line.startswith("gatewayctl "):
            command = line.split(" || ")[0].replace('"$KID"', "gwk_x")
            build_parser().parse_args(shlex.split(command, comments=True)[1:])


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") or k == "GATEWAY_REQUIRE_SERVICES"}
    env |= {"PATH": f"{BIN}{os.pathsep}{env['PATH']}", "GATEWAY_SERVER_PORT": str(port)}
    subprocess.run(["gatewayctl", "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    server = subprocess.Popen(["gatewayctl", "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and "serving on" in server.stdout.readline()
        script = _walkthrough().replace("localhost:8080", f"localhost:{port}")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script + '\necho "URI=$URI"\n'], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert (done.returncode, done.stderr.count("Traceback")) == (0, 0), done.stderr
        out = done.stdout
        [kid] = re.findall(r"^web signs with (gwk_\w+)$", out, re.M)
        assert "HTTP/1.1 302 Found" in out  # step 4
        assert re.search(r"HTTP/1.1 200 OK\r?\nX-Gateway-Kid: " + kid, out)  # step 6: the backend's URL verifies
        assert f"revoked key {kid} (ed25519) for web" in out  # step 7
        assert "\nok: " in out  # step 8: audit verify
        assert "refused (key-revoked, profile native)" in out and f"key {kid} of principal web was revoked" in out
        [uri] = re.findall(r"^URI=(/v/intro/master\.m3u8\?gw_exp=.+)$", out, re.M)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/verify", headers={"X-Original-URI": uri})
        with pytest.raises(urllib.error.HTTPError) as refused:  # revoked in step 7: refused from then on
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()
        assert refused.value.code == 403
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)

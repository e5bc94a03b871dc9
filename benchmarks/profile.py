"""Where a hot path's CPU goes: the real server under wrk load, sampled by py-spy, summed per function.

Run: .venv/bin/python -m benchmarks.profile sign|batch|page|verify-same|verify-distinct [--seconds 10] [--top 25]
Prints the functions with the most samples on the stack (inclusive) and on top (self), as shares
of all samples of the server's main thread. Needs py-spy (pip) and wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import (
    LOAD_CORE,
    PY,
    free_port,
    lua_cycle_header,
    lua_get,
    lua_post,
    process,
    wait_http,
)
from benchmarks.setup import SIGN_BODY, init, prepare


def _lua(step: str, fixture: object, data_dir: Path) -> tuple[str, str]:
    token, viewer, prefix, distinct = (getattr(fixture, n) for n in ("token", "viewer", "prefix_token",
                                                                      "distinct_file"))  # fmt: skip
    if step == "sign":
        return "/v1/sign", lua_post(SIGN_BODY, {"Authorization": f"Bearer {token}"}, "/v1/sign")
    if step == "batch":
        items = [{"media_id": f"m{i}", "rendition": "video"} for i in range(100)]
        body = json.dumps({"items": items, "viewer": {"id": "alice", "workspaces": ["w1"]}})
        return "/v1/sign/batch", lua_post(body, {"Authorization": f"Bearer {token}"}, "/v1/sign/batch")
    if step == "page":
        return "/m/m1/video", lua_get({"Authorization": f"Bearer {viewer}"}, "/m/m1/video")
    if step == "verify-same":
        segments = data_dir / "segments.txt"
        segments.write_text("".join(f"/v/m1/seg{i}.ts?{prefix}\n" for i in range(1000)))
        return "/v1/verify", lua_cycle_header("X-Original-URI", segments)
    return "/v1/verify", lua_cycle_header("X-Original-URI", distinct)


def summarise(raw: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if "MainThread" not in stack.split(";", 1)[0] and not stack.startswith("process"):
            pass
        count = int(count_text)
        frames = [f.split(" (")[0] + " " + f.split("/")[-1].rstrip(")") for f in stack.split(";")[1:]]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"\n-- {title}")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / total:6.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["sign", "batch", "page", "verify-same", "verify-distinct"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="gw-profile-"))
    try:
        init(data_dir)
        fixture = asyncio.run(prepare(data_dir))
        port = free_port()
        path, lua = _lua(args.step, fixture, data_dir)
        script = data_dir / "load.lua"
        from benchmarks.run import _DONE_LUA

        script.write_text(lua + _DONE_LUA)
        serve = [PY, "-m", "gateway.cli.main", "serve", "--data-dir", str(data_dir), "--port", str(port)]
        with process(serve) as server:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            load = subprocess.Popen(["taskset", "-c", LOAD_CORE, "wrk", "-t1", "-c32", f"-d{args.seconds + 3}s",
                                     "-s", str(script), f"http://127.0.0.1:{port}{path}"],
                                    stdout=subprocess.DEVNULL)  # fmt: skip
            time.sleep(1.5)
            raw = data_dir / "stacks.txt"
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.pid),
                            "--duration", str(args.seconds), "--rate", "400", "--format", "raw", "--output",
                            str(raw), "--nonblocking", "--gil"], check=True, capture_output=True)  # fmt: skip
            load.wait()
        summarise(raw, args.top)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sample media made here with ffmpeg (Debian's package), never downloaded.

Each item is an HLS stream of one-second segments (``/v/ID/master.m3u8``,
``/v/ID/seg-000.ts`` …), H.264 and AAC as every HLS player plays, from one of
ffmpeg's test patterns, and a JPEG thumbnail (``/t/ID.jpg``) taken from it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    media_id: str
    title: str
    pattern: str  # an ffmpeg lavfi source
    tone: int  # Hz, so each item also sounds different
    seconds: int

    @property
    def video(self) -> str:
        return f"/v/{self.media_id}/master.m3u8"

    @property
    def thumbnail(self) -> str:
        return f"/t/{self.media_id}.jpg"


ITEMS = (
    Item("intro", "Intro: test card", "testsrc2=size=640x360:rate=25", 440, 40),
    Item("bars", "Colour bars", "smptehdbars=size=640x360:rate=25", 660, 6),
    Item("life", "Game of Life", "life=size=640x360:rate=25:mold=10:life_color=#40c0ff:death_color=#102030", 330, 6),
)


def make_media(ffmpeg: str, root: Path) -> None:
    """Every item of ``ITEMS`` under ``root`` (the origin's directory)."""
    for item in ITEMS:
        _hls(ffmpeg, item, root, item.seconds)
        _thumbnail(ffmpeg, item, root)


def _hls(ffmpeg: str, item: Item, root: Path, seconds: int) -> None:
    out = root / item.video.lstrip("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(
        ffmpeg,
        "-f", "lavfi", "-i", item.pattern,
        "-f", "lavfi", "-i", f"sine=frequency={item.tone}",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-pix_fmt", "yuv420p",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",  # a keyframe opens every one-second segment
        "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(out.parent / "seg-%03d.ts"), str(out),
    )  # fmt: skip


def _thumbnail(ffmpeg: str, item: Item, root: Path) -> None:
    out = root / item.thumbnail.lstrip("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = root / item.video.lstrip("/")
    _run(ffmpeg, "-ss", "2", "-i", str(source), "-frames:v", "1", "-vf", "scale=320:-2", "-q:v", "4", str(out))


def _run(ffmpeg: str, *argv: str) -> None:
    done = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *argv],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()}")

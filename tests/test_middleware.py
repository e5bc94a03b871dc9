"""gateway/web/middleware.py: request ids."""

from __future__ import annotations

import os

from gateway.web.middleware import _new_request_id


def test_each_forked_worker_hands_out_request_ids_of_its_own() -> None:
    """``serve --workers`` forks after import: a prefix made at import would be every worker's."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: its first id, then gone at once
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child.rsplit("-", 1)[0] != _new_request_id().rsplit("-", 1)[0]

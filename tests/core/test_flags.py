"""The settings' table (``hub.core.flags``): one definition per setting, each documented."""

from __future__ import annotations

import dataclasses

from hub.core.config import OPTIONS, Settings
from hub.core.flags import Flags


def test_every_setting_is_declared_in_the_table_with_its_help_and_group() -> None:
    """Settings adds no field of its own: every one is in Flags, with help and a group."""
    table = {f.name for f in dataclasses.fields(Flags)}
    assert {f.name for f in dataclasses.fields(Settings)} == table
    for f in dataclasses.fields(Flags):
        if f.metadata.get("option") is False:
            continue
        assert f.metadata["help"] and f.metadata["group"], f.name


def test_flags_and_variables_are_unique() -> None:
    """No two settings share a flag or an environment variable."""
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)


def test_the_defaults_are_the_tables() -> None:
    """A Settings built from nothing holds the table's defaults."""
    settings = Settings()
    for option in OPTIONS:
        assert getattr(settings, option.name) == option.default, option.name

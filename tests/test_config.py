"""Config machinery: dataclasses <-> TOML <-> overrides, with type errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from ckdsnn_events.config import apply_overrides, from_dict, load_toml, parse_override, to_dict, write_toml
from ckdsnn_events.errors import UserError


@dataclass
class Inner:
    lr: float = 0.1
    epochs: int = 3
    variant: Literal["paper", "reference"] = "paper"
    size: tuple[int, int] = (48, 48)


@dataclass
class Outer:
    name: str = "x"
    checkpoint: str | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_round_trip_through_toml(tmp_path):
    config = Outer(name="run", flag=True, inner=Inner(lr=0.5, size=(32, 32)))
    write_toml(config, tmp_path / "c.toml")
    back = from_dict(Outer, load_toml(tmp_path / "c.toml"))
    assert back == config
    assert "checkpoint" not in to_dict(config)


def test_overrides():
    data = apply_overrides(to_dict(Outer()), ["inner.lr=0.05", "inner.variant=reference", "name=hello world",
                                              "checkpoint='a/b.pt'", "inner.size=[16, 16]"])
    config = from_dict(Outer, data)
    assert config.inner.lr == 0.05 and config.inner.variant == "reference" and config.name == "hello world"
    assert config.checkpoint == "a/b.pt" and config.inner.size == (16, 16)
    assert parse_override("a.b=true") == (["a", "b"], True)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"nme": "x"}, "unknown setting.*config.nme.*valid keys"),
        ({"inner": {"lr": "fast"}}, "config.inner.lr must be a number"),
        ({"inner": {"epochs": 2.5}}, "config.inner.epochs must be a whole number"),
        ({"inner": {"variant": "mine"}}, "config.inner.variant must be one of"),
        ({"flag": 1}, "config.flag must be true or false"),
        ({"inner": {"size": [1, 2, 3]}}, "must have 2 entries"),
        ({"inner": 3}, "must be a table"),
    ],
)
def test_bad_values_name_the_key(data, message):
    with pytest.raises(UserError, match=message):
        from_dict(Outer, data)


def test_bad_files_and_override_syntax(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_toml(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("a = = 1")
    with pytest.raises(UserError, match="not valid TOML"):
        load_toml(tmp_path / "bad.toml")
    for text in ("novalue", "=3", "a..b=1"):
        with pytest.raises(UserError, match="section.key=value"):
            parse_override(text)
    with pytest.raises(UserError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_apply_values_sets_typed_option_values():
    from ckdsnn_events.config import apply_values

    data = {"optim": {"lr": 0.1}, "seed": 0}
    out = apply_values(data, {"optim.lr": 0.05, "data.root": "a=b # not TOML", "seed": None, "data.size": (4, 4)})
    assert out == {"optim": {"lr": 0.05}, "seed": 0, "data": {"root": "a=b # not TOML", "size": (4, 4)}}
    assert data == {"optim": {"lr": 0.1}, "seed": 0}  # a copy: the recipe's dict is untouched
    with pytest.raises(UserError, match="seed.x: 'seed' is a value, not a section"):
        apply_values(data, {"seed.x": 1})

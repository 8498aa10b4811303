"""Strict typed configs: unknown keys, type errors, --set overrides, round trip."""

from dataclasses import dataclass, field

import pytest

from llmrec.config import load_config, save_config
from llmrec.errors import ConfigError


@dataclass
class Inner:
    lr: float = 0.001
    layers: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class Outer:
    name: str = "x"
    epochs: int = 3
    flag: bool = False
    opt: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_file_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 5\ninner:\n  lr: 0.01\n")
    cfg = load_config(Outer, f, ["inner.layers=[4,5]", "flag=true", "opt=abc"], base={"name": "cli"})
    assert cfg == Outer("cli", 5, True, "abc", Inner(0.01, [4, 5]))
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Outer, tmp_path / "out.yaml") == cfg


def test_unknown_key_names_file_and_valid_keys(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml.inner: unknown key 'lrr' for Inner; valid keys: layers, lr"):
        load_config(Outer, f)
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(Outer, None, ["nope=1"])


def test_type_errors():
    with pytest.raises(ConfigError, match="config.epochs: expected an integer"):
        load_config(Outer, None, ["epochs=many"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(Outer, None, ["epochs"])


def test_invalid_yaml_names_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Outer, f)

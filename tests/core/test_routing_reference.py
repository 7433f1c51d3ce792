"""README.md is the one reference for ``[routing]``: it must name every setting at its default."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from attune_cli.core.performance import ScoreWeights
from attune_cli.core.routing import BUILTIN_STAGE_TIERS, RoutingSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _toml_block_after(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    match = re.search(r"```toml\n(.*?)```", text[start:], re.S)
    assert match is not None, f"no toml block after {marker!r}"
    return match.group(1)


def test_the_readme_names_every_routing_setting_at_its_default() -> None:
    block = _toml_block_after("Settings (this is the reference")
    # The caps are commented out (no cap by default); their lines still name the keys.
    routing = tomllib.loads(re.sub(r"(?m)^# (max_)", r"\1", block))["routing"]
    stages = routing.pop("stages")
    fields = {f.name for f in dataclasses.fields(RoutingSettings)} - {"stage_tiers", "weights"}
    assert set(routing) == fields
    defaults = RoutingSettings()
    for key, value in routing.items():
        if key.startswith("max_"):
            assert getattr(defaults, key) is None
        else:
            assert getattr(defaults, key) == value, key
    assert set(stages.values()) <= {"cheap", "capable", "premium"}
    for stage, tier in BUILTIN_STAGE_TIERS.items():
        assert re.search(rf"\b{stage}\b", block), f"built-in stage {stage} ({tier}) not named"


def test_the_readme_names_every_score_weight_at_its_default() -> None:
    score = tomllib.loads(_toml_block_after("### How models are scored"))["routing"]["score"]
    assert score == dataclasses.asdict(ScoreWeights())

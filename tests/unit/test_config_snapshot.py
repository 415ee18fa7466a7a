"""A worker's configuration: validated in a forked child, read as plain objects (no pydantic).

What a worker reads must be what any other process reads from the same file and variables: every
field and every property of every section, and the JSON form the worker hands to pool_sync.
"""

from __future__ import annotations

import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hive_project.config import ConfigError, load_config
from hive_project.config.snapshot import ConfigView, freeze, load_in_child

CONFIG = """
environment: development
multi_agent:
  max_agents: 12
  heartbeat_interval: 7
agents:
  backend:
    capabilities: [python, api]
    min_instances: 1
    max_instances: 4
    runner:
      kind: command
      argv: ["sh", "-c", "echo {prompt}"]
      env: {A: "1"}
      output_format: text
      cost_pattern: 'cost \\$([0-9.]+)'
      rate_limit: {exit_codes: [75], backoff_initial: 5}
    workspace: {keep: true}
  ios:
    capabilities: [swift]
    budget_usd_per_day: 12.5
logging:
  level: WARNING
"""


def properties(model: BaseModel) -> list[str]:
    return [
        name
        for klass in type(model).__mro__
        if not klass.__module__.startswith("pydantic") and klass is not object
        for name, attr in vars(klass).items()
        if isinstance(attr, property)
    ]


def assert_same(model: Any, view: Any, where: str = "config") -> int:
    """Every field and property of `model` reads the same through `view`; returns how many."""
    if isinstance(model, BaseModel):
        assert isinstance(view, ConfigView), where
        assert view.model_dump(mode="json") == model.model_dump(mode="json"), where
        names = [*type(model).model_fields, *properties(model)]
        return sum(assert_same(getattr(model, n), getattr(view, n), f"{where}.{n}") for n in names)
    if isinstance(model, dict):
        assert list(view) == list(model), where
        return sum(assert_same(model[k], view[k], f"{where}[{k}]") for k in model)
    if isinstance(model, list):
        assert len(view) == len(model), where
        return sum(assert_same(m, v, f"{where}[{i}]") for i, (m, v) in enumerate(zip(model, view, strict=True)))
    assert view == model and type(view) is type(model), where
    return 1


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "hive.yaml"
    path.write_text(CONFIG)
    return path


def test_a_view_reads_every_field_and_property_as_the_validated_model_does(config_file: Path) -> None:
    model = load_config(config_file, environ={"LEANVIBE_SCALING_ENABLED": "false"})
    view = freeze(model)

    compared = assert_same(model, view)
    assert compared > 250  # the whole tree, not the first level
    assert view.source_path == config_file
    assert view.env_overrides == {"scaling.enabled": "LEANVIBE_SCALING_ENABLED"}
    assert "agents.backend.runner.argv" in view.file_keys
    assert view.multi_agent.effective_heartbeat_interval == model.multi_agent.effective_heartbeat_interval
    assert view.agents["ios"].budget_usd_per_day == Decimal("12.5")
    assert view.agents["backend"].runner.model_dump(mode="json")["rate_limit"]["exit_codes"] == [75]


def test_a_view_survives_the_pipe_and_cannot_be_changed(config_file: Path) -> None:
    view = pickle.loads(pickle.dumps(freeze(load_config(config_file, environ={}))))

    assert view.multi_agent.max_agents == 12
    with pytest.raises(AttributeError, match="read-only"):
        view.multi_agent.max_agents = 3
    with pytest.raises(AttributeError, match="MultiAgentConfig has no attribute 'max_agent'"):
        _ = view.multi_agent.max_agent
    dumped = view.agents["backend"].runner.model_dump(mode="json")
    dumped["argv"].append("x")  # the caller's copy
    assert view.agents["backend"].runner.model_dump(mode="json")["argv"] == ["sh", "-c", "echo {prompt}"]
    with pytest.raises(ValueError, match="JSON form"):
        view.model_dump(mode="python")


def test_the_child_reads_the_file_and_variables_the_process_has(config_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEANVIBE_CONFIG", str(config_file))
    monkeypatch.setenv("LEANVIBE_MULTI_AGENT_MAX_AGENTS", "20")

    view = load_in_child()

    assert_same(load_config(), view)
    assert view.multi_agent.max_agents == 20
    assert view.agents["backend"].runner.argv == ["sh", "-c", "echo {prompt}"]


def test_the_child_s_configuration_error_is_raised_with_the_same_line(config_file: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEANVIBE_CONFIG", str(config_file))
    monkeypatch.setenv("LEANVIBE_MULTI_AGENT_MAX_AGENTS", "many")
    with pytest.raises(ConfigError) as in_place:
        load_config()

    with pytest.raises(ConfigError) as in_child:
        load_in_child()

    assert str(in_child.value) == str(in_place.value)
    assert str(in_child.value) == (
        "multi_agent.max_agents = 'many': expected an integer > 0 (from LEANVIBE_MULTI_AGENT_MAX_AGENTS)"
    )
    assert (in_child.value.key, in_child.value.source) == (in_place.value.key, in_place.value.source)

"""ml.forest.same_encoding: one encoding of a decision's rows serves both models only when their specs agree."""

from __future__ import annotations

from ml.forest import same_encoding


def spec(*agents: str) -> dict:
    return {"vocab": {"agent": {a: i for i, a in enumerate(agents)}}, "capabilities": ["python"]}


def test_same_encoding_equal_specs_share_and_different_ones_do_not():
    duration, success, other = {"spec": spec("a", "b")}, {"spec": spec("a", "b")}, {"spec": spec("b", "a")}

    assert same_encoding(duration, success) is True
    assert same_encoding(other, success) is False
    assert same_encoding(duration, success) is True  # the kept answer, per pair


def test_same_encoding_artifact_without_spec_never_shares():
    assert same_encoding({"spec": spec("a")}, {}) is False

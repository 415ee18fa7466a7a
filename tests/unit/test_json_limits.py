"""coordination.json_limits: deep, non-finite and NUL-bearing JSON is refused without recursion."""

from __future__ import annotations

import json
import math

import pytest

from coordination.json_limits import MAX_JSON_DEPTH, UnsafeJson, contains_nul, loads, problem, raw_depth_exceeds


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


@pytest.mark.parametrize("depth", [1, 5, MAX_JSON_DEPTH])
def test_raw_depth_exceeds_within_the_limit_is_false(depth):
    assert not raw_depth_exceeds(nested(depth).encode())
    assert not raw_depth_exceeds(nested(depth))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 400, 1_000_000])
def test_raw_depth_exceeds_beyond_the_limit_is_true(depth):
    assert raw_depth_exceeds(nested(depth).encode())


def test_raw_depth_exceeds_mixed_objects_and_arrays_count_alike():
    text = '{"a": ' * 20 + "[" * 20 + "1" + "]" * 20 + "}" * 20
    assert raw_depth_exceeds(text, limit=39)
    assert not raw_depth_exceeds(text, limit=40)


def test_raw_depth_exceeds_brackets_inside_strings_do_not_count():
    text = json.dumps({"prompt": "[" * 5000 + '\\"{' * 100, "list": [["x"]]})
    assert not raw_depth_exceeds(text.encode(), limit=3)


def test_raw_depth_exceeds_siblings_do_not_add_up():
    text = "[" + ",".join(["[[1]]"] * 10_000) + "]"
    assert not raw_depth_exceeds(text, limit=3)
    assert raw_depth_exceeds(text, limit=2)


def test_loads_deep_document_raises_unsafe_json_not_recursion_error():
    with pytest.raises(UnsafeJson, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        loads(b'{"payload": ' + nested(100_000).encode() + b"}")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_non_finite_constants_raise_unsafe_json(constant):
    with pytest.raises(UnsafeJson, match=f"{constant} is not a JSON number"):
        loads(f'{{"a": {constant}}}')


def test_loads_malformed_text_raises_json_decode_error():
    with pytest.raises(json.JSONDecodeError):
        loads(b"{nope")


def test_loads_ordinary_document_is_parsed():
    assert loads(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"a": math.nan}, "contains NaN or Infinity, which JSON has no number for"),
        ({"a": [1, math.inf]}, "contains NaN or Infinity, which JSON has no number for"),
        ({"a": "x\x00y"}, "contains a NUL character"),
        ({"a\x00": 1}, "contains a NUL character"),
        ({1: "x"}, "has a key that is not a string"),
        ({"a": {1, 2}}, "holds a set, which is not a JSON value"),
    ],
)
def test_problem_names_what_json_cannot_hold(value, why):
    assert problem(value) == why


def test_problem_deep_value_is_refused_without_recursion():
    value: list = []
    for _ in range(200_000):
        value = [value]

    assert problem(value) == f"is nested deeper than {MAX_JSON_DEPTH} levels"
    assert contains_nul(value) is False


def test_problem_value_at_the_limit_is_fine():
    value: dict = {"leaf": 1}
    for _ in range(MAX_JSON_DEPTH - 1):
        value = {"k": value}

    assert problem(value) is None
    assert problem({"k": value}) == f"is nested deeper than {MAX_JSON_DEPTH} levels"

"""Reading a session plan: every check a plan must pass before a session stores anything.

A plan is a JSON object (or the same in YAML):

    name: release notes            # the session's goal
    mode: dag                      # dag | fan_out | consensus
    timeout: 300                   # seconds, at most agent_coordination.session_timeout (the default)
    continue_on_failure: false     # dag: run dependents of a failed step anyway
    consensus_threshold: 0.7       # consensus: the share an answer needs, in (0, 1]
    steps:
      - name: a                    # letters, digits, - and _; used in placeholders and file names
        command: [...]             # or prompt: "..." (a task spec, as task_submit takes it)
        capabilities: [python]
        depends_on: [b]            # dag only
        targets: [backend, ios]    # fan_out / consensus: one copy per pool, named a-backend, a-ios
        count: 3                   # fan_out / consensus: N copies, named a-1 .. a-3

A dependent reads its dependencies through `{steps.<name>.result}` and `{steps.<name>.output}`
in its prompt or command (and `steps/<name>.json` in its workspace); such a placeholder must name
a step it depends on. `read_plan` refuses a bad plan with InvalidSession naming the step and the
reason; it reads pools but writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from agents.models import AgentPool
from coordination.errors import HiveError, InvalidSession
from coordination.models import CoordinationSession
from coordination.routing import eligible_pools, pool_among
from coordination.services import task_spec_check

Mode = CoordinationSession.Mode
STEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
# `{steps.<name>.<field>}` as written; the fields a dependent may read.
STEP_PLACEHOLDER = re.compile(r"\{steps\.([^{}.\s]*)\.([^{}.\s]*)\}")
STEP_FIELDS = ("result", "output")
PLAN_KEYS = {"name", "mode", "steps", "timeout", "continue_on_failure", "consensus_threshold"}
SPEC_KEYS = {
    "prompt",
    "command",
    "capabilities",
    "payload",
    "task_type",
    "priority",
    "complexity",
    "timeout",
    "max_attempts",
}
STEP_KEYS = SPEC_KEYS | {"name", "depends_on", "targets", "count"}


@dataclass(frozen=True)
class StepPlan:
    name: str
    position: int
    spec: dict[str, Any]  # task_submit's arguments, checked; `pool` set for a fan-out target
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    mode: str
    timeout: float
    continue_on_failure: bool
    consensus_threshold: float | None
    steps: list[StepPlan] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The plan as stored on the session: what was accepted, copies spelled out."""
        return {
            "name": self.name,
            "mode": self.mode,
            "timeout": self.timeout,
            "continue_on_failure": self.continue_on_failure,
            "consensus_threshold": self.consensus_threshold,
            "steps": [{"name": s.name, **s.spec, "depends_on": list(s.depends_on)} for s in self.steps],
        }


def read_plan(plan: Any) -> Plan:
    """The plan, checked and normalised; InvalidSession naming what is wrong otherwise."""
    conf = settings.HIVE_CONFIG.external_api.agent_coordination
    if not isinstance(plan, Mapping):
        raise InvalidSession("a session plan must be an object with name, mode and steps")
    unknown = sorted(str(k) for k in plan if k not in PLAN_KEYS)
    if unknown:
        raise InvalidSession(f"unknown plan field {unknown[0]!r}; a plan has {', '.join(sorted(PLAN_KEYS))}")
    name = plan.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise InvalidSession("name must be the session's goal: 1 to 200 characters")
    mode = plan.get("mode", Mode.DAG)
    if mode not in Mode.values:
        raise InvalidSession(f"mode must be one of {', '.join(Mode.values)}, not {mode!r}")
    timeout = _timeout(plan.get("timeout"), limit=conf.session_timeout)
    continue_on_failure = plan.get("continue_on_failure", False)
    if not isinstance(continue_on_failure, bool):
        raise InvalidSession("continue_on_failure must be true or false")
    if continue_on_failure and mode != Mode.DAG:
        raise InvalidSession("continue_on_failure applies to dag sessions only (other modes have no dependents)")
    threshold = _threshold(plan.get("consensus_threshold"), mode=mode, default=conf.consensus_threshold)
    raw_steps = plan.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InvalidSession("steps must be a non-empty list of steps")
    if len(raw_steps) > conf.max_participants:  # before any copy is made of a huge plan
        raise _too_many(len(raw_steps), conf.max_participants)
    steps = _expand([_step(raw, i, mode) for i, raw in enumerate(raw_steps)])
    if len(steps) > conf.max_participants:
        raise _too_many(len(steps), conf.max_participants)
    if mode == Mode.CONSENSUS and len(steps) < 2:
        raise InvalidSession("a consensus needs at least 2 participants (give count, targets or more steps)")
    _check_names_and_dependencies(steps)
    for step in steps:
        _check_placeholders(step)
        _check_routable(step)
    return Plan(
        name=name.strip(),
        mode=mode,
        timeout=timeout,
        continue_on_failure=continue_on_failure,
        consensus_threshold=threshold,
        steps=steps,
    )


def _too_many(n: int, limit: int) -> InvalidSession:
    return InvalidSession(
        f"the plan has {n} steps (participants); at most {limit} are allowed "
        "(external_api.agent_coordination.max_participants)"
    )


def _timeout(value: Any, *, limit: float) -> float:
    if value is None:
        return float(limit)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= limit:
        raise InvalidSession(
            f"timeout must be a number of seconds above 0 and at most {limit:g} "
            "(external_api.agent_coordination.session_timeout)"
        )
    return float(value)


def _threshold(value: Any, *, mode: str, default: float) -> float | None:
    if mode != Mode.CONSENSUS:
        if value is not None:
            raise InvalidSession("consensus_threshold applies to consensus sessions only")
        return None
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise InvalidSession("consensus_threshold must be a number above 0 and at most 1")
    return float(value)


@dataclass
class _RawStep:
    name: str
    position: int
    spec: dict[str, Any]
    depends_on: tuple[str, ...]
    targets: tuple[str, ...]
    count: int | None


def _step(raw: Any, index: int, mode: str) -> _RawStep:
    if not isinstance(raw, Mapping):
        raise InvalidSession(f"steps[{index}] must be an object with a name and a prompt or command")
    name = raw.get("name")
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise InvalidSession(
            f"steps[{index}].name must start with a letter and hold only letters, digits, - and _ (at most 64)"
        )
    unknown = sorted(str(k) for k in raw if k not in STEP_KEYS)
    if unknown:
        raise InvalidSession(f"step {name}: unknown field {unknown[0]!r}; a step has {', '.join(sorted(STEP_KEYS))}")
    try:
        spec = task_spec_check(**{k: raw[k] for k in SPEC_KEYS if k in raw and raw[k] is not None})
    except HiveError as exc:
        raise InvalidSession(f"step {name}: {exc.detail}") from None
    if "steps" in spec["payload"]:
        raise InvalidSession(
            f"step {name}: payload.steps is reserved: the session puts its dependencies' results there"
        )
    depends_on = _names(raw.get("depends_on"), f"step {name}: depends_on")
    targets = _names(raw.get("targets"), f"step {name}: targets")
    count = raw.get("count")
    if depends_on and mode != Mode.DAG:
        raise InvalidSession(f"step {name}: depends_on applies to dag sessions only")
    if (targets or count is not None) and mode == Mode.DAG:
        raise InvalidSession(f"step {name}: targets and count apply to fan_out and consensus sessions only")
    if targets and count is not None:
        raise InvalidSession(f"step {name}: give targets or count, not both")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise InvalidSession(f"step {name}: count must be a whole number of copies, at least 1")
    return _RawStep(name, index, spec, depends_on, targets, count)


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidSession(f"{what} must be a list of names")
    if len(set(value)) != len(value):
        raise InvalidSession(f"{what} names {sorted(v for v in value if value.count(v) > 1)[0]} twice")
    return tuple(value)


def _expand(raws: Sequence[_RawStep]) -> list[StepPlan]:
    """Fan-out and consensus copies, each a step of its own: `a-<pool>` per target, `a-<n>` per count."""
    steps: list[StepPlan] = []
    for raw in raws:
        if raw.targets:
            for pool in raw.targets:
                steps.append(StepPlan(f"{raw.name}-{pool}", len(steps), {**raw.spec, "pool": pool}))
        elif raw.count is not None:
            limit = settings.HIVE_CONFIG.external_api.agent_coordination.max_participants
            if raw.count > limit:  # before making the copies
                raise _too_many(raw.count, limit)
            for n in range(1, raw.count + 1):
                steps.append(StepPlan(f"{raw.name}-{n}", len(steps), dict(raw.spec)))
        else:
            steps.append(StepPlan(raw.name, len(steps), dict(raw.spec), raw.depends_on))
    return steps


def _check_names_and_dependencies(steps: Sequence[StepPlan]) -> None:
    seen: set[str] = set()
    for step in steps:
        if not STEP_NAME.match(step.name):
            raise InvalidSession(f"step {step.name}: a copy's name (step-target) must be at most 64 characters")
        if step.name in seen:
            raise InvalidSession(f"two steps are named {step.name}")
        seen.add(step.name)
    for step in steps:
        for dep in step.depends_on:
            if dep not in seen:
                raise InvalidSession(f"step {step.name} depends on {dep}, which is not a step of this plan")
    cycle = find_cycle({s.name: s.depends_on for s in steps})
    if cycle:
        raise InvalidSession(f"the steps form a cycle: {' -> '.join(cycle)}")


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of `graph` (step -> the steps it depends on) as a closed path [a, b, a], or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for root in graph:
        if colour[root] != WHITE:
            continue
        path: list[str] = [root]
        colour[root] = GREY
        stack = [iter(graph[root])]
        while stack:  # iterative depth-first search: a plan is small, but recursion is not needed
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                stack.pop()
            elif colour[nxt] == GREY:
                return [*path[path.index(nxt) :], nxt]
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return None


def _check_placeholders(step: StepPlan) -> None:
    texts = [step.spec["prompt"], *(step.spec["command"] or [])]
    for text in texts:
        for name, fieldname in STEP_PLACEHOLDER.findall(text):
            placeholder = f"{{steps.{name}.{fieldname}}}"
            if fieldname not in STEP_FIELDS:
                raise InvalidSession(
                    f"step {step.name}: {placeholder} reads nothing; use {{steps.<name>.result}} or .output"
                )
            if name not in step.depends_on:
                raise InvalidSession(f"step {step.name} uses {placeholder} but does not depend on {name}")


def _check_routable(step: StepPlan) -> None:
    """Some enabled pool can run the step (the named one, for a fan-out target)."""
    try:
        pools = eligible_pools(step.spec["capabilities"], needs_commands=bool(step.spec["command"]))
        if step.spec.get("pool"):
            if not AgentPool.objects.filter(name=step.spec["pool"], enabled=True).exists():
                raise InvalidSession(f"step {step.name}: there is no enabled pool {step.spec['pool']}")
            pool_among(pools, step.spec["pool"])
    except InvalidSession:
        raise
    except HiveError as exc:
        raise InvalidSession(f"step {step.name}: {exc.detail}") from None

"""The model registry: storing versions, promoting them, and loading the active ones.

- `register` writes a trained model's artifact (joblib, under `var/models/`), records its sha256
  and metrics in a `ModelVersion`, and activates it only when it beats the baseline on the
  held-out rows AND beats the active version there by `adaptation_threshold` (relative). The
  comparison uses the held-out rows newer than what the active version was trained on when
  there are enough of them, so the active version is not judged on rows it has learned.
- `active_models` gives every process the active versions without a restart: it asks the
  database which versions are active at most every ACTIVE_CHECK_SECONDS, and keeps loaded
  artifacts keyed by version id. An artifact whose checksum does not match is refused: not loaded,
  logged once per process, and reported so the strategy can say why it fell back.

joblib (pickle) runs code while loading; the checksum is what makes a swapped file harmless.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from hive_project.paths import var_dir
from ml.models import ModelVersion

log = logging.getLogger(__name__)

# (the new training, the active version's artifact, the active version) -> (new error, active error, rows)
Compare = Callable[[Any, dict[str, Any], ModelVersion], tuple[float, float, int]]

ACTIVE_CHECK_SECONDS = 5.0
MIN_COMPARISON_ROWS = 20


class ArtifactRefused(Exception):
    """The artifact file is missing or is not the one that was registered."""


def artifact_dir() -> Path:
    path = var_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_artifact(artifact: Mapping[str, Any], *, kind: str, version: int) -> tuple[str, str]:
    """Dump `artifact` atomically (temporary file, then rename); returns (path, sha256)."""
    import joblib

    buffer = io.BytesIO()
    # keys starting with "_" are what a process builds from a loaded artifact, never stored
    joblib.dump({k: v for k, v in artifact.items() if not k.startswith("_")}, buffer, compress=3)
    data = buffer.getvalue()
    path = artifact_dir() / f"{kind}-v{version}-{uuid.uuid4().hex[:8]}.joblib"
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return str(path), hashlib.sha256(data).hexdigest()


def load_artifact(row: ModelVersion) -> dict[str, Any]:
    """The artifact of `row`, after checking its sha256. Raises ArtifactRefused."""
    import joblib

    try:
        data = Path(row.artifact).read_bytes()
    except OSError as exc:
        raise ArtifactRefused(f"{row.label}: artifact {row.artifact} cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.sha256:
        raise ArtifactRefused(f"{row.label}: artifact {row.artifact} does not match its checksum (refused)")
    return joblib.load(io.BytesIO(data))  # the very bytes that were checked


# --- registering and promoting -------------------------------------------------------------------------


@dataclass
class Registered:
    version: ModelVersion
    activated: bool
    reason: str


def register(
    trained: Any,
    *,
    threshold: float,
    compare: Compare,
    primary: str,
) -> Registered:
    """Store `trained` as the next version of its kind and activate it if it earned it.

    `compare(trained, active_artifact, active_row)` returns (new error, active error, rows) on
    the same held-out rows. The caller holds the training lock, so versions are numbered in turn.
    """
    kind = trained.kind
    number = (ModelVersion.objects.filter(kind=kind).aggregate(n=Max("version"))["n"] or 0) + 1
    path, digest = _write_artifact(trained.artifact, kind=kind, version=number)
    new, base = trained.metrics[primary], trained.baseline_metrics[primary]
    rows = trained.metrics.get("rows", 0)
    active = ModelVersion.objects.filter(kind=kind, active=True).first()
    if not new < base:
        activate, reason = (
            False,
            f"not better than the baseline ({primary} {new:.4g} vs {base:.4g} on {rows} held-out rows)",
        )
    else:
        activate, reason = True, f"beats the baseline ({primary} {new:.4g} vs {base:.4g} on {rows} held-out rows)"
        if active is not None:
            activate, reason = _against_active(
                trained, active, threshold=threshold, compare=compare, primary=primary, reason=reason
            )
    with transaction.atomic():
        row = ModelVersion.objects.create(
            kind=kind,
            version=number,
            trained_at=timezone.now(),
            trained_until=trained.trained_until,
            samples=trained.samples,
            algorithm=trained.algorithm,
            features=trained.features,
            metrics=_rounded(trained.metrics),
            baseline_metrics=_rounded(trained.baseline_metrics),
            artifact=path,
            sha256=digest,
            promotion=reason,
            training_seconds=round(trained.seconds, 3),
        )
        if activate:
            activate_version(row)
    return Registered(version=row, activated=activate, reason=reason)


def _against_active(
    trained: Any,
    active: ModelVersion,
    *,
    threshold: float,
    compare: Compare,
    primary: str,
    reason: str,
) -> tuple[bool, str]:
    from ml.training import improvement

    try:
        old_artifact = load_artifact(active)
    except ArtifactRefused as exc:
        log.error("%s", exc)
        return True, f"{reason}; the active {active.label} is refused ({exc}), so this one replaces it"
    new, old, rows = compare(trained, old_artifact, active)
    gain = improvement(new, old)
    versus = f"{active.label} ({primary} {new:.4g} vs {old:.4g} on {rows} held-out rows, {gain:+.0%})"
    if gain >= threshold:
        return True, f"{reason}; beats {versus}, at least the {threshold:.0%} the adaptation threshold asks"
    return False, f"{reason}; but does not beat {versus} by the {threshold:.0%} the adaptation threshold asks"


@transaction.atomic
def activate_version(row: ModelVersion) -> None:
    """Make `row` the active version of its kind (the one-active constraint holds throughout)."""
    ModelVersion.objects.filter(kind=row.kind, active=True).exclude(id=row.id).update(active=False)
    ModelVersion.objects.filter(id=row.id).update(active=True, activated_at=timezone.now())
    row.active = True


def _rounded(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}


# --- loading the active versions (every process) ---------------------------------------------------------


@dataclass
class Loaded:
    id: int
    kind: str
    version: int
    artifact: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.kind} v{self.version}"


@dataclass
class Active:
    """What this process uses: loaded models by kind, and why an active version is not usable."""

    models: dict[str, Loaded] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


_lock = threading.Lock()
_checked_at = -float("inf")
_current = Active()
_loaded: dict[int, Loaded] = {}
_refused: dict[int, str] = {}


def active_models(*, max_age: float = ACTIVE_CHECK_SECONDS, clock: Callable[[], float] = time.monotonic) -> Active:
    """The active versions, rechecked in the database when the last check is older than `max_age`."""
    global _checked_at, _current
    if clock() - _checked_at < max_age:
        return _current
    with _lock:
        if clock() - _checked_at < max_age:
            return _current
        if _active_ids() == _current_ids:  # nothing promoted or retired since the last check
            _checked_at = clock()
            return _current
        rows = list(ModelVersion.objects.filter(active=True))
        current = Active()
        for row in rows:
            if row.id in _refused:
                current.refused[row.kind] = _refused[row.id]
                continue
            if row.id not in _loaded:
                try:
                    artifact = load_artifact(row)
                except ArtifactRefused as exc:
                    log.error("%s; routing falls back until a valid version is active", exc)
                    _refused[row.id] = str(exc)
                    current.refused[row.kind] = str(exc)
                    continue
                _prepare(artifact)
                _loaded[row.id] = Loaded(id=row.id, kind=row.kind, version=row.version, artifact=artifact)
            current.models[row.kind] = _loaded[row.id]
        for stale in set(_loaded) - {m.id for m in current.models.values()}:
            del _loaded[stale]  # replaced versions: free their arrays
        _current, _checked_at = current, clock()
        _current_ids[:] = sorted(row.id for row in rows)
        return current


_current_ids: list[int] = []  # the active rows `_current` was built from, loaded or refused


def _active_ids() -> list[int]:
    """Ids of the active versions, in plain SQL: this runs on the submit path every
    ACTIVE_CHECK_SECONDS, and the ORM's compiling costs several times the query."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {ModelVersion._meta.db_table} WHERE active = %s ORDER BY id", [True])
        return [row[0] for row in cursor.fetchall()]


def _prepare(artifact: dict[str, Any]) -> None:
    """Build once what every prediction would otherwise rebuild (the feature vocabularies)."""
    if "spec" in artifact:
        from ml.features import FeatureSpec

        artifact["_spec"] = FeatureSpec.from_dict(artifact["spec"])


def forget() -> None:
    """Drop this process's loaded models and refusals, so the next call reads the registry afresh."""
    global _checked_at, _current
    with _lock:
        _checked_at = -float("inf")
        _current = Active()
        _current_ids.clear()
        _loaded.clear()
        _refused.clear()

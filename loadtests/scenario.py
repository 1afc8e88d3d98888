"""A load test scenario: what to simulate and what counts as passing, read from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

BUILT_IN = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(Exception):
    """A scenario that cannot run; the message is one line for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Chat(_Strict):
    messages_per_second: float = Field(
        default=0.5, ge=0, le=50, description="per participant; 0 means join and listen only"
    )
    text_length: int = Field(default=40, ge=1, le=4000, description="characters per message")


class Video(_Strict):
    width: int = Field(default=640, ge=16, le=3840)
    height: int = Field(default=480, ge=16, le=2160)
    fps: int = Field(default=30, ge=1, le=60)
    bitrate_kbps: int = Field(default=500, ge=16, le=20000)


class Media(_Strict):
    enabled: bool = False
    video: Video | None = Field(default_factory=lambda: Video(), description="null: audio only")
    audio: bool = True
    text_only_share: float = Field(
        default=0.0, ge=0, le=1, description="join in text mode, no media"
    )
    failing_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="start media, then stop sending on purpose (fallback test)",
    )
    fail_after_s: float = Field(default=5.0, ge=0, description="when the failing share goes silent")

    @model_validator(mode="after")
    def _shares(self) -> Media:
        if self.text_only_share + self.failing_share > 1:
            raise ValueError("text_only_share + failing_share must not exceed 1")
        return self


class Phone(_Strict):
    enabled: bool = False
    share_of_rooms: float = Field(
        default=0.5, gt=0, le=1, description="rooms that get one caller dialling in by PIN"
    )
    sip_port: int = Field(default=5060, ge=1, le=65535, description="on the URL's host")
    calls_per_second: float = Field(default=4.0, gt=0, le=100)


class Thresholds(_Strict):
    """Every limit given must hold for the run to pass; unset ones are not checked.

    Three hold unless a scenario sets them to null: every participant joins, no
    acknowledged message is lost, and every publisher failing on purpose is stepped down.
    A scenario without thresholds used to pass with 16 of 24 participants joined. Media and
    fallback limits apply only to runs with media (and publishers failing on purpose)."""

    p50_chat_latency_ms: float | None = Field(default=None, ge=0)
    p95_chat_latency_ms: float | None = Field(default=None, ge=0)
    p99_chat_latency_ms: float | None = Field(default=None, ge=0)
    p99_join_ms: float | None = Field(default=None, ge=0)
    lost_messages: int | None = Field(default=0, ge=0)
    unacked_messages: int | None = Field(default=None, ge=0)
    duplicated_messages: int | None = Field(default=None, ge=0)
    errors: int | None = Field(default=None, ge=0)
    join_failures: int | None = Field(default=0, ge=0)
    max_server_cpu_percent: float | None = Field(default=None, ge=0)
    max_server_memory_mb: float | None = Field(default=None, ge=0)
    p99_first_frame_ms: float | None = Field(default=None, ge=0)
    min_media_frames_ratio: float | None = Field(default=None, ge=0, le=1)
    # Of the publishers failing on purpose, the share the server stepped down the ladder;
    # a server that never steps down used to pass.
    min_fallback_share: float | None = Field(default=1.0, ge=0, le=1)
    max_fallback_ms: float | None = Field(default=None, ge=0)  # silence → first step
    phone_failed_calls: int | None = Field(default=None, ge=0)
    p99_phone_setup_ms: float | None = Field(default=None, ge=0)


class Scenario(_Strict):
    name: str = Field(default="custom", min_length=1, max_length=60)
    description: str = ""
    rooms: int = Field(default=1, ge=1, le=100_000)
    participants_per_room: int = Field(default=2, ge=1, le=100)
    ramp_up_s: float = Field(default=5.0, ge=0, description="spread joins over this long")
    duration_s: float = Field(default=30.0, gt=0, description="steady phase after ramp-up")
    drain_s: float = Field(default=5.0, ge=0, description="wait for in-flight messages at the end")
    chat: Chat = Field(default_factory=lambda: Chat())
    media: Media = Field(default_factory=lambda: Media())
    phone: Phone = Field(default_factory=lambda: Phone())
    thresholds: Thresholds = Field(default_factory=lambda: Thresholds())
    scrape_interval_s: float = Field(default=2.0, gt=0, description="how often /metrics is read")
    room_prefix: str = Field(default="lt", pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,30}$")
    concurrent_joins: int = Field(
        default=50, ge=1, le=10_000, description="joins in flight at once"
    )

    @property
    def participants(self) -> int:
        return self.rooms * self.participants_per_room


def _override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `--set a.b=value` (value read as YAML, so numbers and booleans work)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ScenarioError(f"--set needs key=value, got {assignment!r}")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ScenarioError(f"--set {key}: {part} is not a section")
        node = child
    node[leaf] = yaml.safe_load(raw)


def load_scenario(name_or_path: str, overrides: list[str] | None = None) -> Scenario:
    """A built-in scenario by name (`smoke`, `cohort`, `group`) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and (BUILT_IN / f"{name_or_path}.yaml").exists():
        path = BUILT_IN / f"{name_or_path}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        known = ", ".join(sorted(p.stem for p in BUILT_IN.glob("*.yaml")))
        raise ScenarioError(
            f"cannot read scenario {name_or_path!r} ({exc.strerror}); built-in: {known}"
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a map of settings")
    for assignment in overrides or []:
        _override(data, assignment)
    try:
        return Scenario(**data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "scenario"
        raise ScenarioError(f"{path}: {where}: {error['msg']}") from None

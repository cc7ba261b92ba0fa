"""Settings, validated with pydantic: daemon file, spool.toml, SPOOLD_* environment, flags.

Later sources win: built-in defaults < daemon file (spool keys there are defaults for
every spool) < the spool's spool.toml < SPOOLD_<KEY> environment variables < flags.
Every error names where the value came from (the file and key, the environment variable
or the flag) and the allowed values, and stops start-up (exit 78).
Each setting's meaning and default is documented in docs/configuration.md (a test keeps
the two in step).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from .errors import ConfigError, JobError
from .spool.after import MAX_AFTER, AfterRef
from .spool.allow_fetch import parse_prefix
from .spool.ids import SUBMITTER_RE, is_job_id
from .spool.pages import THEME_MARGINS, parse_margins, parse_page_size

Target = Literal["pdf", "docx", "html"]
Detect = Literal["auto", "inotify", "poll"]
OnDuplicate = Literal["reuse", "rerun", "reject"]

DEFAULT_IGNORE = (
    ".*",
    "*.part",
    "*.filepart",
    "*.crdownload",
    "*.tmp",
    "~$*",
    ".~lock.*#",
    "Thumbs.db",
    ".DS_Store",
    "desktop.ini",  # Windows folder settings, written next to what people drop
    "*~",  # editor backups (report.md~)
)

# The built-in PDF themes: the stylesheets shipped in spoold/convert/themes/ (the rules
# they share are in its shared/ folder, which is no theme).
THEMES_DIR = Path(__file__).with_name("convert") / "themes"
THEMES = tuple(sorted(p.stem for p in THEMES_DIR.glob("*.css")))
# `auto`: the default theme, except for HTML that brings its own styles; `none`: no theme.
THEME_CHOICES = ("auto", "none", *THEMES)


def _check_margins(v: str) -> str:
    parse_margins(v)  # its ValueError says what is allowed; pydantic adds the key
    return v


def check_theme(v: str) -> str:
    if v not in THEME_CHOICES:
        raise ValueError(f"unknown theme {v!r}; allowed: {', '.join(THEME_CHOICES)}")
    return v


def check_page_size(v: str) -> str:
    """`v` if page.py's one table knows it ('A4', 'letter landscape'...)."""
    try:
        parse_page_size(v)
    except JobError as exc:
        raise ValueError(exc.message) from None  # pydantic adds where it came from
    return v


Margins = Annotated[str, AfterValidator(_check_margins)]
Theme = Annotated[str, AfterValidator(check_theme)]
PageSize = Annotated[str, AfterValidator(check_page_size)]


class JobDefaults(BaseModel):
    """Options a route or a job may override."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Target] = Field(default_factory=lambda: list[Target](["pdf"]), min_length=1)
    priority: int = Field(default=50, ge=0, le=100)
    timeout_s: float = Field(default=300, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    theme: Theme = "auto"
    page_size: PageSize = "A4"
    margins: Margins = THEME_MARGINS
    on_duplicate: OnDuplicate = "reuse"
    on_success: list[str] | None = None
    on_failure: list[str] | None = None


class RouteSettings(JobDefaults):
    """`[routes.NAME]`: jobs dropped into inbox/NAME/ get these options."""


# The smallest `memory_limit_mb`: a small Markdown->PDF in a fresh worker succeeds from
# 224 MB and crashes below (Pango cannot start a thread, or fontconfig runs dry);
# 512 leaves twice that (docs/operations.md "Fonts and the worker memory limit").
MIN_MEMORY_LIMIT_MB = 512


class SpoolSettings(JobDefaults):
    settle_ms: int = Field(default=1000, ge=0)
    incomplete_after_s: float = Field(default=3600, gt=0)
    unchanged_fail_s: float = Field(default=120, gt=0)
    detect: Detect = "auto"
    poll_interval_ms: int = Field(default=500, ge=10)
    scan_interval_s: float = Field(default=5.0, gt=0)
    lease_ttl_s: float = Field(default=30.0, gt=0)
    timeout_retryable: bool = False
    backoff_initial_s: float = Field(default=5.0, ge=0)
    backoff_max_s: float = Field(default=600.0, ge=0)
    min_free_mb: int = Field(default=100, ge=0)
    max_queued: int = Field(default=10000, ge=1)
    drain_s: float = Field(default=60.0, ge=0)
    cancel_grace_s: float = Field(default=10.0, ge=0)
    cancel_marker_ttl_s: float = Field(default=3600.0, ge=0)
    cancel_marker_window_s: float = Field(default=5.0, ge=0)
    # How long a job waits for a job it names in `after` to appear (docs/protocol.md).
    after_missing_s: float = Field(default=30.0, ge=0)
    ignore: list[str] = Field(default_factory=list)
    keep_done_days: float = Field(default=30, gt=0)
    keep_failed_days: float = Field(default=90, gt=0)
    events_max_mb: float = Field(default=64, gt=0)
    events_held_max: int = Field(default=10000, ge=1)
    durable: bool = True
    max_input_mb: float = Field(default=200, gt=0)
    max_upload_mb: float = Field(default=100, gt=0)  # one HTTP request's body (spoold serve)
    memory_limit_mb: int = Field(default=2048)
    cpu_limit_s: float = Field(default=600, gt=0)
    output_mode: str | None = None
    output_group: str | None = None
    flat_output: bool = False
    admin_group: str | None = None
    hook_timeout_s: float = Field(default=60, gt=0)
    allow_fetch: list[str] = Field(default_factory=list)
    routes: dict[str, RouteSettings] = Field(default_factory=dict)

    @field_validator("memory_limit_mb")
    @classmethod
    def _memory_floor(cls, v: int) -> int:
        if v < MIN_MEMORY_LIMIT_MB:
            raise ValueError(
                f"must be at least {MIN_MEMORY_LIMIT_MB} (MB): below that a worker cannot"
                " load WeasyPrint and its fonts reliably (docs/configuration.md)"
            )
        return v

    @field_validator("output_mode")
    @classmethod
    def _octal_mode(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                mode = int(v, 8)
            except ValueError:
                raise ValueError("must be an octal mode such as '0664'") from None
            if not 0 <= mode <= 0o777:
                raise ValueError("must be an octal mode between 0000 and 0777")
        return v

    @field_validator("allow_fetch")
    @classmethod
    def _fetch_prefixes(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                parse_prefix(entry)
            except ValueError as exc:
                raise ValueError(
                    f"entry {entry!r}: {exc} (expected a prefix such as"
                    " 'https://cdn.example.com/assets/')"
                ) from None
        return v

    @field_validator("routes")
    @classmethod
    def _route_names(cls, v: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
        for name in v:
            if not name or "/" in name or name.startswith("."):
                raise ValueError(f"route name {name!r} must be a plain folder name")
        return v

    def ignore_patterns(self) -> tuple[str, ...]:
        """The names the daemon leaves alone in inbox/: the defaults and `ignore`."""
        return (*DEFAULT_IGNORE, *self.ignore)

    def for_route(self, route: str | None) -> JobDefaults:
        """The job defaults of a route: the route's own keys over the spool's.

        Built without validating again (model_construct): every value was validated as
        a setting already, and a validated model costs 15-30 us a call, three a job.
        """
        base = {k: getattr(self, k) for k in JobDefaults.model_fields}
        if route is not None and route in self.routes:
            r = self.routes[route]
            base.update({k: getattr(r, k) for k in r.model_fields_set})
        return JobDefaults.model_construct(**base)


class DaemonSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spools: list[Path] = Field(default_factory=list)
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=256)
    host_id: str | None = None
    detect: Detect | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Worker recycling: after a job whose worker is left holding more than
    # max_worker_rss_mb resident, or after max_tasks_per_worker jobs (a backstop). A
    # spawned worker takes about 1 s of CPU to start: at 500 jobs it cost tiny jobs
    # 40 % more worker CPU (docs/performance.md "Worker recycling").
    max_worker_rss_mb: int = Field(default=512, ge=1)
    max_tasks_per_worker: int = Field(default=10_000, ge=1)


class JobFile(BaseModel):
    """job.json inside a job folder; unknown keys fail the job naming the key."""

    model_config = ConfigDict(extra="forbid")

    main: str | None = None
    targets: list[Target] | None = Field(default=None, min_length=1)
    priority: int | None = Field(default=None, ge=0, le=100)
    timeout_s: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    theme: Theme | None = None
    page_size: PageSize | None = None
    margins: Margins | None = None
    metadata: dict[str, str | int | float | bool | list[str]] | None = None
    # Other jobs of the spool this one waits for (spool/after.py, docs/protocol.md).
    after: list[AfterRef] | None = Field(default=None, max_length=MAX_AFTER)
    # Chosen before the claim by the tool that dropped the job (spool/ids.py).
    id: str | None = None
    submitted_by: str | None = None

    @field_validator("id")
    @classmethod
    def _job_id_form(cls, v: str | None) -> str | None:
        if v is not None and not is_job_id(v):
            raise ValueError(
                "must be a job id such as '20260130T101500Z-3f9a1c2b7d' (UTC time, '-', "
                "10 hex digits; spoold.spool.clock.new_job_id makes one)"
            )
        return v

    @field_validator("submitted_by")
    @classmethod
    def _submitter_form(cls, v: str | None) -> str | None:
        if v is not None and not SUBMITTER_RE.match(v):
            raise ValueError(
                "must be 1-64 letters, digits or ._@+- (starting with a letter or digit)"
            )
        return v


DAEMON_KEYS = frozenset(DaemonSettings.model_fields)
SPOOL_KEYS = frozenset(SpoolSettings.model_fields)


def describe_errors(
    exc: ValidationError, source: str, origins: Mapping[str, str] | None = None
) -> str:
    """One line per problem: where the value came from, the key and what is allowed.

    `source` is the file the values came from; `origins` maps a top-level key to where
    its value came from instead (a flag, an environment variable, another file).
    """
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        got = err.get("input")
        shown = "" if err["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        top = str(err["loc"][0]) if err["loc"] else ""
        where = (origins or {}).get(top)
        if where is None:
            lines.append(f"{source}: key {key!r}: {msg}{shown}")
        else:
            sub = key[len(top) + 1 :]
            lines.append(f"{where}{f' key {sub!r}' if sub else ''}: {msg}{shown}")
    return "\n".join(lines)


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def env_name(key: str) -> str:
    return f"SPOOLD_{key.upper()}"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc


def _env_values(keys: frozenset[str], env: dict[str, str]) -> dict[str, Any]:
    """SPOOLD_<KEY> variables, parsed as TOML values where they look like one."""
    out: dict[str, Any] = {}
    for key in keys:
        raw = env.get(env_name(key))
        if raw is None or key == "routes":
            continue
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def load_daemon_settings(
    config: Path | None,
    flags: dict[str, Any],
    env: dict[str, str] | None = None,
) -> tuple[DaemonSettings, dict[str, Any]]:
    """The daemon settings, and the spool keys the daemon file sets as defaults."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    source = "defaults"
    if config is not None:
        data = read_toml(config)
        source = str(config)
    spool_defaults = {k: v for k, v in data.items() if k in SPOOL_KEYS and k not in DAEMON_KEYS}
    unknown = sorted(set(data) - DAEMON_KEYS - SPOOL_KEYS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r} (daemon keys: {', '.join(sorted(DAEMON_KEYS))}; "
            "or any spool.toml key as a default)"
        )
    merged = {k: v for k, v in data.items() if k in DAEMON_KEYS}
    env_vals = _env_values(DAEMON_KEYS - {"spools"}, env)
    merged.update(env_vals)
    given = {k: v for k, v in flags.items() if v is not None}
    merged.update(given)
    origins = {k: f"environment variable {env_name(k)} (key {k!r})" for k in env_vals}
    origins.update({k: f"flag {flag_name(k)}" for k in given})
    try:
        settings = DaemonSettings(**merged)
        # Spool keys set here are checked now, so their errors name this file.
        SpoolSettings(**spool_defaults)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source, origins)) from exc
    return settings, spool_defaults


def load_spool_settings(
    spool_root: Path,
    defaults: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    defaults_source: str = "the daemon file",
) -> SpoolSettings:
    env = dict(os.environ) if env is None else env
    path = spool_root / "spool.toml"
    data: dict[str, Any] = dict(defaults or {})
    origins = {k: f"{defaults_source}: key {k!r}" for k in data}
    if path.exists():
        from_file = read_toml(path)
        data.update(from_file)
        for k in from_file:
            origins.pop(k, None)
    env_vals = _env_values(SPOOL_KEYS - DAEMON_KEYS, env)
    data.update(env_vals)
    origins.update({k: f"environment variable {env_name(k)} (key {k!r})" for k in env_vals})
    try:
        return SpoolSettings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, str(path), origins)) from exc


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to spool.toml")


def spool_toml(settings: dict[str, Any]) -> str:
    """spool.toml text for flat keys and `routes = {NAME: {key: value}}` (for tools,
    tests and benchmarks that make spools; the daemon itself only reads the file)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in settings.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables:
        for sub, sub_settings in value.items():
            lines.append(f"\n[{key}.{sub}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub_settings.items()]
    return "\n".join(lines) + "\n"

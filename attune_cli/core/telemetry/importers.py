"""Call histories in and out of the store: the formats ``telemetry import``/``export`` speak.

Formats read:

``attune-jsonl``
    The older attune tool's ``usage*.jsonl`` (a file, or the folder holding its daily
    rotations). One JSON object a line: ``v``, ``ts`` (ISO-8601, ``Z``), ``seq``, ``workflow``,
    optional ``stage``, ``tier`` (upper case), ``model``, ``provider``, ``cost``, ``tokens``
    {``input``, ``output``}, ``cache`` {``hit``, ``type``}, ``duration_ms``, ``user_id``,
    optional ``prompt_cache`` and ``success``. ``user_id`` is dropped. Cache hits are skipped:
    the model did not serve them, and their zero cost and latency would flatter it.
``llm-db``
    The ``logs.db`` of Simon Willison's ``llm``: its ``turns`` table (llm 0.36 and later) and
    its ``responses`` table (earlier releases, and the calls an upgraded file logged before),
    each with model, ``datetime_utc``, ``duration_ms``, ``input_tokens``, ``output_tokens``.
    Prompts and answers are never read. Provider, tier and cost come from the registry.
``jsonl`` / ``csv``
    attune's own export (``EXPORT_FIELDS``), so export → import round-trips exactly.

Every import is streamed (never a whole file in memory) and idempotent: each call has an
identity (``key``: a hash of its line, the ``llm`` response id, or the exported key) and
importing it again adds nothing. It commits in short chunks so other writers are never kept
waiting, with an undo log (``attune_cli.core.telemetry.BulkImport``): a file with bad lines
imports nothing unless ``skip_bad`` is set, a dry run keeps nothing, and an interrupted import
leaves the store as it was (a killed one, once the next import or prune has run).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from attune_cli.core.clock import now
from attune_cli.core.errors import InputFileError
from attune_cli.core.registry import Registry, normalise_tier
from attune_cli.core.safe_text import quote, unsafe_characters
from attune_cli.core.telemetry.db import interruptible, raise_if_interrupted
from attune_cli.core.telemetry.records import COLUMNS, CallFilter, Row, iso_to_ts, ts_to_iso
from attune_cli.core.telemetry.sqlite import TelemetryStore, insert_statement

FORMATS: tuple[str, ...] = ("attune-jsonl", "llm-db", "jsonl", "csv")
EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "csv")
# The name given to a workflow or stage a row does not carry (and no flag supplied).
UNKNOWN = "unknown"
# Bad lines listed in a report; the count of bad lines is always exact.
MAX_LISTED_ERRORS = 20

# The stored columns, in their order; a call's identity (``import_key``) is exported as ``key``.
EXPORT_FIELDS: tuple[str, ...] = (*COLUMNS[:-1], "key")

Progress = Callable[[int, int], None]  # (done, total) in the reader's unit (bytes or rows)


@dataclass(frozen=True)
class LineError:
    """One bad line of an import: where, and why."""

    line: int
    reason: str
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "file": self.file}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how.

    Attributes:
        path: a file, or (``attune-jsonl``) a folder of ``usage*.jsonl`` files.
        format: one of ``FORMATS`` or ``auto`` (detected from the content).
        dry_run: check and count everything, then roll back.
        skip_bad: import the good lines of a file that has bad ones.
        workflow: the workflow of rows that carry none (default ``unknown``).
        stage: the stage of rows that carry none (default ``unknown``).
    """

    path: Path
    format: str = "auto"
    dry_run: bool = False
    skip_bad: bool = False
    workflow: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class ImportResult:
    """What an import did.

    Attributes:
        path: what was read.
        format: the format it was read as.
        read: calls read (blank lines aside).
        imported: new calls added (would be added, for a dry run; 0 when rejected).
        duplicates: calls already in the store (or repeated in the input).
        cache_hits: cache hits skipped (``attune-jsonl``).
        bad: bad lines (all of them with ``skip_bad``; otherwise counting stops at the
            listing limit).
        errors: the first bad lines, with line number and reason.
        dry_run: nothing was written, on purpose.
        rejected: bad lines were found without ``skip_bad``, so nothing was imported.
    """

    path: Path
    format: str
    read: int
    imported: int
    duplicates: int
    cache_hits: int
    bad: int
    errors: tuple[LineError, ...]
    dry_run: bool
    rejected: bool

    @property
    def skipped(self) -> int:
        """Calls read but not added: duplicates, cache hits and bad lines."""
        return self.read - self.imported

    @property
    def importable(self) -> int:
        """Good calls in the input, new or already stored."""
        return self.read - self.bad - self.cache_hits

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``telemetry import --json``."""
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "format": self.format,
            "errors": [error.as_dict() for error in self.errors],
            "path": str(self.path),
            "read": self.read,
            "duplicates": self.duplicates,
            "cache_hits": self.cache_hits,
            "bad": self.bad,
            "dry_run": self.dry_run,
            "rejected": self.rejected,
        }


class _BadLine(Exception):
    """A line that cannot become a call; the message is the reason shown to the user."""


@dataclass
class _Tally:
    """Counts a reader keeps while streaming."""

    read: int = 0
    cache_hits: int = 0
    bad: int = 0
    errors: list[LineError] = field(default_factory=list)
    names: set[tuple[str, str, str]] = field(default_factory=set)


class _Rollback(Exception):
    """Leave the transaction without writing (dry run, or rejected input)."""


_BATCH_ROWS = 5_000


def import_calls(
    store: TelemetryStore,
    options: ImportOptions,
    *,
    registry: Registry,
    progress: Progress | None = None,
) -> ImportResult:
    """Read a call history into ``store``, in short chunks undone unless it all goes in.

    Args:
        store: the telemetry store.
        options: what to read and how.
        registry: fills provider, tier and cost a format does not carry.
        progress: called now and then with (done, total) while reading.

    Returns:
        What was read, imported and skipped. When ``result.rejected``, nothing was written.

    Raises:
        InputFileError: the path is missing, unreadable, binary or of an unknown format.
    """
    path = options.path
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")
    fmt = detect_format(path) if options.format == "auto" else options.format
    if fmt not in FORMATS:
        raise InputFileError(f"unknown import format {fmt!r}; expected one of {FORMATS}")
    if path.is_dir() and fmt != "attune-jsonl":
        raise InputFileError(f"{path}: a folder; only --format attune-jsonl reads folders")
    if path.is_file() and path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty; there is nothing to import")
    global _latest_ts
    _latest_ts = now() + FUTURE_SLACK_S
    defaults = _Defaults(
        workflow=options.workflow or UNKNOWN,
        stage=options.stage or UNKNOWN,
        registry=registry,
    )
    tally = _Tally()
    imported = 0
    try:
        with store.bulk_import() as bulk:
            statement = _STATEMENTS.get(fmt)
            for batch in _batches(fmt, path, defaults, options.skip_bad, tally, progress):
                if statement is None:
                    imported += bulk.insert(batch)
                else:
                    imported += bulk.insert(batch, statement=statement)
            if (tally.bad and not options.skip_bad) or options.dry_run:
                raise _Rollback
            bulk.finish(tally.names)
    except _Rollback:
        pass
    rejected = bool(tally.bad) and not options.skip_bad
    if tally.read == 0:
        raise InputFileError(f"{path}: holds no calls ({fmt}); there is nothing to import")
    good = tally.read - tally.bad - tally.cache_hits
    return ImportResult(
        path=path,
        format=fmt,
        read=tally.read,
        imported=0 if rejected else imported,
        duplicates=0 if rejected else good - imported,
        cache_hits=tally.cache_hits,
        bad=tally.bad,
        errors=tuple(tally.errors),
        dry_run=options.dry_run,
        rejected=rejected,
    )


def _batches(
    fmt: str,
    path: Path,
    defaults: _Defaults,
    skip_bad: bool,
    tally: _Tally,
    progress: Progress | None,
) -> Iterator[list[Row]]:
    """Good rows in lists of ``_BATCH_ROWS``; names go to ``tally`` for the labels."""
    batch: list[Row] = []
    names = tally.names
    for row in _READERS[fmt](path, defaults, tally, progress):
        if tally.bad and not skip_bad:
            # Rejected: read on only to list the first bad lines.
            if len(tally.errors) >= MAX_LISTED_ERRORS:
                break
            continue
        names.add((row[1], row[2], row[4]))
        batch.append(row)
        if len(batch) >= _BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def detect_format(path: Path) -> str:
    """Tell the format of ``path`` from its content (a folder is ``attune-jsonl``).

    Raises:
        InputFileError: unreadable, binary, or no known format.
    """
    if path.is_dir():
        return "attune-jsonl"
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it ({exc.strerror})") from None
    if head.startswith(b"SQLite format 3\x00"):
        return "llm-db"
    if b"\x00" in head:
        raise InputFileError(f"{path}: a binary file, not a call history")
    if path.suffix.lower() == ".csv":
        return "csv"
    lines = [line.strip() for line in head.splitlines() if line.strip()][:50]
    if not lines:
        return "jsonl"
    for line in lines:
        try:
            sample = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(sample, dict):
            if "key" in sample or "latency_ms" in sample or "source" in sample:
                return "jsonl"
            if "duration_ms" in sample or "tokens" in sample or "v" in sample or "seq" in sample:
                return "attune-jsonl"
        break
    header = lines[0].decode("utf-8", "replace").lower().split(",")
    if "ts" in header and "model" in header:
        return "csv"
    # No line to judge by: the name still tells (the bad lines are then reported one by one).
    if path.name.startswith("usage") and path.suffix == ".jsonl":
        return "attune-jsonl"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    raise InputFileError(
        f"{path}: cannot tell its format",
        hint="pass --format attune-jsonl, llm-db, jsonl or csv",
    )


@dataclass
class _Defaults:
    """What rows without a workflow/stage get, and the registry for the rest."""

    workflow: str
    stage: str
    registry: Registry
    aliases: dict[str, str] = field(default_factory=dict)
    _derived: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def model_id(self, name: str) -> str:
        """The registry's id for a model the older tool named with dots (``claude-sonnet-4.5``)."""
        known = self.aliases.get(name)
        if known is None:
            known = name
            if self.registry.model(name) is None:
                dashed = name.replace(".", "-")
                if self.registry.model(dashed) is not None:
                    known = dashed
            self.aliases[name] = known
        return known

    def provider_tier(self, model: str) -> tuple[str | None, str | None]:
        """Provider and tier the registry gives ``model`` (None when unknown)."""
        found = self._derived.get(model)
        if found is None:
            entry = self.registry.model(model)
            found = (self.registry.provider_of(model), entry.tier if entry else None)
            self._derived[model] = found
        return found


def _key(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


# SQLite stores integers in 64 bits; a larger Python int cannot be bound to a statement.
_MAX_INTEGER = 2**63 - 1

# A call's time must be a time a call could have happened: none is older than 2000, and one
# dated in the future would sit in every window forever. A day of slack covers skewed clocks.
EARLIEST_TS = 946_684_800.0  # 2000-01-01T00:00:00Z
FUTURE_SLACK_S = 86_400.0
_latest_ts = math.inf  # set by import_calls, once per import, to the clock's now + the slack


def _bounded(ts: float) -> float:
    if EARLIEST_TS <= ts <= _latest_ts:
        return ts
    when = ts_to_iso(ts) if -62_135_596_800 <= ts <= 253_402_300_799 else repr(ts)
    if ts < EARLIEST_TS:
        raise _BadLine(f"`ts` {when} is before 2000: no LLM call is that old")
    raise _BadLine(f"`ts` {when} is in the future")


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not value >= 0 or value == math.inf:
        raise _BadLine(f"`{name}` must be a non-negative number (got {quote(value)})")
    try:
        return float(value)
    except OverflowError:
        raise _BadLine(f"`{name}` is too large (got {quote(value)})") from None


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        if type(value) is float and value >= 0 and value.is_integer():
            value = int(value)
        else:
            raise _BadLine(f"`{name}` must be a non-negative integer (got {quote(value)})")
    if value > _MAX_INTEGER:
        raise _BadLine(f"`{name}` is too large (got {quote(value)})")
    return int(value)


def _text(value: Any, name: str, default: str | None = None) -> str | None:
    if value is None or value == "":
        return default
    if type(value) is not str:
        raise _BadLine(f"`{name}` must be a string (got {quote(value)})")
    return _name(value, name)


def _name(value: str, name: str) -> str:
    """``value``, unless it holds a character a terminal would obey (see ``safe_text``)."""
    if not value.isprintable() and unsafe_characters(value):
        raise _BadLine(f"`{name}` holds control or bidirectional characters (got {quote(value)})")
    return value


def _intern(names: dict[str, str], value: str, name: str) -> str:
    """One string object per distinct name, each checked once (the first time it is seen)."""
    known = names.get(value)
    if known is None:
        known = names[value] = _name(value, name)
    return known


def _time(value: Any) -> float:
    if type(value) is str:
        try:
            ts = iso_to_ts(value)
        except ValueError:
            pass
        else:
            return _bounded(ts)
    elif value is None:
        raise _BadLine("missing `ts`")
    raise _BadLine(f"`ts` is not an ISO-8601 time (got {quote(value)})")


def _json_lines(
    files: list[Path], tally: _Tally, progress: Progress | None
) -> Iterator[tuple[str, int, bytes, dict[str, Any]]]:
    """(file name, line number, stripped line, object) for each JSON object line."""
    total = sum(f.stat().st_size for f in files)
    done = 0
    # The scanner under json.loads, called directly on decoded text: loads(bytes) spends
    # half its time sniffing the encoding and matching whitespace around the value.
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
    for path in files:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputFileError(f"{path}: cannot read it ({exc.strerror})") from None
        with handle:
            for number, raw in enumerate(handle, 1):
                done += len(raw)
                if progress is not None and not number & 8191:
                    progress(done, total)
                line = raw.strip()
                if not line:
                    continue
                tally.read += 1
                try:
                    text = line.decode()
                    obj, end = scan(text, 0)
                    if end != len(text):
                        raise json.JSONDecodeError("Extra data", text, end)
                except UnicodeDecodeError:
                    _reject(tally, path.name, number, "not UTF-8 text")
                    continue
                except StopIteration:
                    _reject(tally, path.name, number, "not JSON (expecting a value)")
                    continue
                except json.JSONDecodeError as exc:
                    _reject(tally, path.name, number, f"not JSON ({exc.msg} at column {exc.colno})")
                    continue
                except ValueError:
                    # An integer literal past Python's digit limit for int().
                    _reject(tally, path.name, number, "not JSON (a number too long to read)")
                    continue
                except RecursionError:
                    _reject(tally, path.name, number, "not JSON (nested too deeply)")
                    continue
                if type(obj) is not dict:
                    _reject(tally, path.name, number, "not a JSON object")
                    continue
                yield path.name, number, line, obj
    if progress is not None:
        progress(total, total)


def _reject(tally: _Tally, file: str | None, line: int, reason: str) -> None:
    tally.bad += 1
    if len(tally.errors) < MAX_LISTED_ERRORS:
        tally.errors.append(LineError(line=line, reason=reason, file=file))


def _legacy_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    # usage.2026-01-06.jsonl … sort before usage.jsonl (today's), i.e. oldest first.
    files = sorted(p for p in path.glob("usage*.jsonl") if p.is_file())
    if not files:
        raise InputFileError(f"{path}: no usage*.jsonl files in this folder")
    return files


def _read_attune_jsonl(
    path: Path, defaults: _Defaults, tally: _Tally, progress: Progress | None
) -> Iterator[Row]:
    # The hot loop of a migration (a million lines): checks are inlined and the common
    # shapes tested first; anything unusual goes through the general helpers.
    workflow_default, stage_default = defaults.workflow, defaults.stage
    model_id, provider_tier = defaults.model_id, defaults.provider_tier
    number_types = (int, float)
    # One string object per distinct name: rows are smaller in memory and
    # SQLite binds the same object over and over.
    names: dict[str, str] = {}
    tiers: dict[str, str] = {}
    aliases = defaults.aliases
    blake2b = hashlib.blake2b
    for name, number, line, obj in _json_lines(_legacy_files(path), tally, progress):
        try:
            cache = obj.get("cache")
            if cache is not None and type(cache) is dict and cache.get("hit") is True:
                tally.cache_hits += 1
                continue
            model = obj.get("model")
            if type(model) is not str or not model:
                raise _BadLine("missing `model`" if model is None else "`model` must be a string")
            model = aliases.get(model) or model_id(_name(model, "model"))
            ts_text = obj.get("ts")
            try:
                # Only text reaches the parser: it tests a time's length and characters
                # before its type, so a list or object of the right size would crash it.
                ts = iso_to_ts(ts_text) if type(ts_text) is str else _time(ts_text)
            except ValueError:
                ts = _time(ts_text)
            if not EARLIEST_TS <= ts <= _latest_ts:
                _bounded(ts)
            workflow = obj.get("workflow")
            if type(workflow) is not str or not workflow:
                workflow = _text(workflow, "workflow", workflow_default)
            workflow = names.get(workflow) or _intern(names, workflow, "workflow")  # type: ignore[arg-type]
            stage = obj.get("stage")
            if type(stage) is not str or not stage:
                stage = _text(stage, "stage", stage_default)
            stage = names.get(stage) or _intern(names, stage, "stage")  # type: ignore[arg-type]
            provider = obj.get("provider")
            tier = obj.get("tier")
            if type(provider) is not str or not provider or type(tier) is not str or not tier:
                known_provider, known_tier = provider_tier(model)
                provider = _text(provider, "provider", known_provider)
                tier = _text(tier, "tier", known_tier)
            if provider is not None:
                provider = names.get(provider) or _intern(names, provider, "provider")
            if tier is not None:
                canonical_tier = tiers.get(tier)
                if canonical_tier is None:
                    canonical_tier = tiers[tier] = normalise_tier(_name(tier, "tier"))
                tier = canonical_tier
            tokens = obj.get("tokens")
            if type(tokens) is dict:
                input_tokens = tokens.get("input")
                output_tokens = tokens.get("output")
                if type(input_tokens) is not int or not 0 <= input_tokens <= _MAX_INTEGER:
                    input_tokens = _count(input_tokens, "tokens.input")
                if type(output_tokens) is not int or not 0 <= output_tokens <= _MAX_INTEGER:
                    output_tokens = _count(output_tokens, "tokens.output")
            elif tokens is None:
                input_tokens = output_tokens = None
            else:
                raise _BadLine(f"`tokens` must be an object (got {quote(tokens)})")
            success = obj.get("success", True)
            if success is not True and success is not False:
                raise _BadLine(f"`success` must be true or false (got {quote(success)})")
            duration: Any = obj.get("duration_ms")
            if type(duration) not in number_types or not 0 <= duration <= _MAX_INTEGER:
                duration = _number(duration, "duration_ms")
            cost: Any = obj.get("cost")
            if type(cost) not in number_types or not 0 <= cost <= _MAX_INTEGER:
                cost = _number(cost, "cost")
            # The shape of _LEGACY_STATEMENT: no error kind or status, attempt 1, its source.
            row = (
                ts,
                workflow,
                stage,
                provider,
                model,
                tier,
                1 if success else 0,
                duration,
                input_tokens,
                output_tokens,
                cost,
                blake2b(line, digest_size=8).hexdigest(),  # _key(line), inlined
            )
        except _BadLine as exc:
            _reject(tally, name, number, str(exc))
            continue
        yield row


def _billing(value: Any) -> str | None:
    """The ``billing`` of an exported call: ``subscription``, ``api`` or none."""
    if value is None or value in ("subscription", "api"):
        return value  # type: ignore[no-any-return]
    raise _BadLine(f"`billing` must be subscription or api (got {quote(value)})")


def _own_row(values: dict[str, Any], defaults: _Defaults, source_default: str) -> Row:
    """A row of attune's export format (from JSON, or CSV converted to JSON types)."""
    model = values.get("model")
    if type(model) is not str or not model:
        raise _BadLine("missing `model`" if not model else "`model` must be a string")
    _name(model, "model")
    ts = _time(values.get("ts"))
    success = values.get("success")
    if type(success) is not bool:
        raise _BadLine(
            "missing `success`"
            if success is None
            else f"`success` must be true or false (got {quote(success)})"
        )
    attempt = _count(values.get("attempt"), "attempt")
    row: Row = (
        ts,
        _text(values.get("workflow"), "workflow", defaults.workflow),
        _text(values.get("stage"), "stage", defaults.stage),
        _text(values.get("provider"), "provider"),
        model,
        _text(values.get("tier"), "tier"),
        1 if success else 0,
        _text(values.get("error_kind"), "error_kind"),
        _count(values.get("status"), "status"),
        _number(values.get("latency_ms"), "latency_ms"),
        _count(values.get("input_tokens"), "input_tokens"),
        _count(values.get("output_tokens"), "output_tokens"),
        _number(values.get("cost_usd"), "cost_usd"),
        1 if attempt is None else attempt,
        _text(values.get("source"), "source", source_default),
        None,
    )
    key = _text(values.get("key"), "key")
    if key is None:
        key = _key(json.dumps(row[:15]).encode())
    return (*row[:15], _billing(values.get("billing")), key)


def _read_jsonl(
    path: Path, defaults: _Defaults, tally: _Tally, progress: Progress | None
) -> Iterator[Row]:
    for name, number, _line, obj in _json_lines([path], tally, progress):
        try:
            row = _own_row(obj, defaults, "jsonl")
        except _BadLine as exc:
            _reject(tally, name, number, str(exc))
            continue
        yield row


_CSV_NUMBERS = {"latency_ms", "cost_usd"}
_CSV_COUNTS = {"status", "input_tokens", "output_tokens", "attempt"}
_CSV_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _csv_values(record: dict[str, str | None]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, text in record.items():
        if name is None or text is None or text == "":
            continue
        if name in _CSV_NUMBERS:
            try:
                values[name] = float(text)
            except ValueError:
                raise _BadLine(f"`{name}` must be a number (got {quote(text)})") from None
        elif name in _CSV_COUNTS:
            try:
                values[name] = int(text)
            except ValueError:
                raise _BadLine(f"`{name}` must be an integer (got {quote(text)})") from None
        elif name == "success":
            flag = _CSV_BOOLEANS.get(text.strip().lower())
            if flag is None:
                raise _BadLine(f"`success` must be true or false (got {quote(text)})")
            values[name] = flag
        else:
            values[name] = unprotect_cell(text)
    return values


def _read_csv(
    path: Path, defaults: _Defaults, tally: _Tally, progress: Progress | None
) -> Iterator[Row]:
    total = path.stat().st_size
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it ({exc.strerror})") from None
    # utf-8-sig: a spreadsheet's CSV often starts with a byte-order mark.
    with raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputFileError(f"{path}: not a CSV file ({exc})") from None
        missing = [name for name in ("ts", "model", "success") if name not in header]
        if header and missing:
            raise InputFileError(
                f"{path}:1: the CSV header lacks {', '.join(missing)}",
                hint=f"the columns attune exports are: {','.join(EXPORT_FIELDS)}",
            )
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                tally.read += 1
                _reject(tally, path.name, reader.line_num, f"not CSV ({exc})")
                break
            number = reader.line_num
            if progress is not None and number % 8192 == 0:
                progress(raw.tell(), total)
            if not any(record.values()):
                continue
            tally.read += 1
            try:
                if None in record:
                    raise _BadLine("more fields than the header names")
                row = _own_row(_csv_values(record), defaults, "csv")
            except _BadLine as exc:
                _reject(tally, path.name, number, str(exc))
                continue
            yield row
    if progress is not None:
        progress(total, total)


# The tables llm has logged calls in, newest schema first: ``turns`` since llm 0.36 (its
# message store), ``responses`` before (and still holding the calls an upgraded logs.db
# logged earlier). Each row is one call; prompts and answers are never read.
LLM_TABLES: tuple[tuple[str, str], ...] = (
    ("turns", "llm 0.36 and later"),
    ("responses", "llm before 0.36"),
)
_LLM_NEEDED = ("id", "model", "datetime_utc")
_LLM_COLUMNS = ("id", "model", "datetime_utc", "duration_ms", "input_tokens", "output_tokens")


def llm_tables(source: sqlite3.Connection, path: Path) -> list[tuple[str, list[str]]]:
    """The call tables of an llm ``logs.db`` and the columns to select from each.

    Raises:
        InputFileError: a call table is a view (its query may never end), or the file holds
            neither table (the message names both, and which llm wrote each).
    """
    found: list[tuple[str, list[str]]] = []
    for table, _written_by in LLM_TABLES:
        try:
            kind = source.execute(
                "SELECT type FROM sqlite_master WHERE name = ? COLLATE NOCASE", (table,)
            ).fetchone()
            columns = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
        except sqlite3.DatabaseError as exc:
            raise InputFileError(f"{path}: not a SQLite database ({exc})") from None
        if kind is None:
            continue
        if kind[0] != "table":
            # Only a table is read: a view runs the file author's query, which may never end.
            raise InputFileError(
                f"{path}: `{table}` is a {kind[0]}, not a table; llm's logs.db has a table",
                hint="is this llm's logs.db?",
            )
        if set(_LLM_NEEDED) <= columns:
            found.append((table, [c if c in columns else "NULL" for c in _LLM_COLUMNS]))
    if not found:
        looked_for = " or ".join(f"`{table}` ({who})" for table, who in LLM_TABLES)
        raise InputFileError(
            f"{path}: holds no table of calls attune can read: looked for {looked_for}, "
            f"with columns {', '.join(_LLM_NEEDED)}",
            hint="is this llm's logs.db? `llm logs path` prints where it is",
        )
    return found


def _read_llm_db(
    path: Path, defaults: _Defaults, tally: _Tally, progress: Progress | None
) -> Iterator[Row]:
    try:
        source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputFileError(f"{path}: cannot open it as an llm logs.db ({exc})") from None
    stack = contextlib.ExitStack()
    try:
        tables = llm_tables(source, path)
        stack.enter_context(interruptible(source))
        total = sum(
            source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table, _ in tables
        )
        if total == 0:
            read = " and ".join(f"`{table}`" for table, _ in tables)
            raise InputFileError(
                f"{path}: holds no logged calls ({read} {'is' if len(tables) == 1 else 'are'} "
                "empty); there is nothing to import",
                hint="is llm logging? `llm logs status` says",
            )
        number = 0
        for table, picked in tables:
            noun = table.rstrip("s")
            cursor = source.execute(f"SELECT {', '.join(picked)} FROM {table} ORDER BY rowid")
            while True:
                batch = cursor.fetchmany(5000)
                if not batch:
                    break
                for call_id, model, when, duration, input_tokens, output_tokens in batch:
                    number += 1
                    tally.read += 1
                    try:
                        row = _llm_row(
                            defaults, call_id, model, when, duration, input_tokens, output_tokens
                        )
                    except _BadLine as exc:
                        _reject(tally, path.name, number, f"{noun} {call_id}: {exc}")
                        continue
                    yield row
                if progress is not None:
                    progress(number, total)
    except sqlite3.DatabaseError as exc:
        raise_if_interrupted()
        raise InputFileError(f"{path}: cannot read llm's logged calls ({exc})") from None
    finally:
        stack.close()
        source.close()


def _llm_row(
    defaults: _Defaults,
    call_id: Any,
    model: Any,
    when: Any,
    duration: Any,
    input_tokens: Any,
    output_tokens: Any,
) -> Row:
    if type(model) is not str or not model:
        raise _BadLine("missing `model`")
    _name(model, "model")
    ts = _time(when)
    provider, tier = defaults.provider_tier(model)
    tokens_in = _count(input_tokens, "input_tokens")
    tokens_out = _count(output_tokens, "output_tokens")
    cost = None
    if tokens_in is not None and tokens_out is not None:
        cost = defaults.registry.cost_usd(model, tokens_in, tokens_out)
    return (
        ts,
        defaults.workflow,
        defaults.stage,
        provider,
        model,
        tier,
        1,
        None,
        None,
        _number(duration, "duration_ms"),
        tokens_in,
        tokens_out,
        cost,
        1,
        "llm-db",
        None,
        # The same identity whichever table held it: an upgraded logs.db imports once.
        _key(f"llm-db\0{call_id}".encode()),
    )


_STATEMENTS = {
    "attune-jsonl": insert_statement(
        {
            "error_kind": None,
            "status": None,
            "attempt": 1,
            "source": "attune-jsonl",
            "billing": None,
        }
    ),
}

_READERS: dict[str, Callable[[Path, _Defaults, _Tally, Progress | None], Iterable[Row]]] = {
    "attune-jsonl": _read_attune_jsonl,
    "llm-db": _read_llm_db,
    "jsonl": _read_jsonl,
    "csv": _read_csv,
}


def export_record(row: Row) -> dict[str, Any]:
    """One stored row as an export object (``EXPORT_FIELDS``, ``ts`` as ISO-8601 UTC)."""
    (
        ts,
        workflow,
        stage,
        provider,
        model,
        tier,
        success,
        error_kind,
        status,
        latency_ms,
        input_tokens,
        output_tokens,
        cost_usd,
        attempt,
        source,
        billing,
        key,
    ) = row
    if key is None:
        key = _key(json.dumps(row[:15]).encode())
    return {
        "ts": ts_to_iso(ts),
        "workflow": workflow,
        "stage": stage,
        "provider": provider,
        "model": model,
        "tier": tier,
        "success": bool(success),
        "error_kind": error_kind,
        "status": status,
        # A non-finite figure (stored before attune refused them) is exported as unknown: the
        # export must stay standard JSON that `telemetry import` reads back.
        "latency_ms": _finite(latency_ms),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": _finite(cost_usd),
        "attempt": attempt,
        "source": source,
        "billing": billing,
        "key": str(key),
    }


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


# A spreadsheet reads a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@")


def _needs_protection(text: str) -> bool:
    # A leading quote is protected too when what follows it would be: so the importer can
    # strip exactly one quote from every protected cell and give back the stored value.
    return text.lstrip("'").startswith(FORMULA_STARTS)


def protect_cell(text: str) -> str:
    """``text`` as a spreadsheet shows it as text: a leading ``'`` before a formula start.

    ``=cmd|' /C calc'!A0`` becomes ``'=cmd|' /C calc'!A0``; ``unprotect_cell`` undoes it.
    """
    return "'" + text if _needs_protection(text) else text


def unprotect_cell(text: str) -> str:
    """The value ``protect_cell`` was given (a cell it did not change is returned as is)."""
    if text.startswith("'") and _needs_protection(text[1:]):
        return text[1:]
    return text


def export_calls(
    store: TelemetryStore | None,
    where: CallFilter,
    fmt: str,
    out: IO[str],
    *,
    raw_csv: bool = False,
) -> int:
    """Write the matching calls, oldest first, to ``out`` in ``fmt``; returns how many.

    ``store`` None (nothing recorded yet) writes an empty export: nothing, or the CSV header.
    In CSV, a text cell that a spreadsheet would run as a formula (it starts with ``=``,
    ``+``, ``-`` or ``@``) gets a leading ``'`` unless ``raw_csv``; the CSV importer takes
    it off again, so export → import stays exact.

    Raises:
        InputFileError: ``fmt`` is not an export format.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputFileError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
    rows = store.iter_calls(where) if store is not None else iter(())
    written = 0
    if fmt == "jsonl":
        dumps = functools.partial(json.dumps, allow_nan=False)
        for row in rows:
            out.write(dumps(export_record(row)) + "\n")
            written += 1
        return written
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        record = export_record(row)
        writer.writerow(
            [
                ("true" if value else "false")
                if name == "success"
                else (
                    ""
                    if value is None
                    else protect_cell(value)
                    if type(value) is str and not raw_csv
                    else value
                )
                for name, value in record.items()
            ]
        )
        written += 1
    return written


def export_to_path(
    store: TelemetryStore | None,
    where: CallFilter,
    fmt: str,
    path: Path,
    *,
    raw_csv: bool = False,
) -> int:
    """``export_calls`` into ``path``, atomically: a reader sees the old file or the new one.

    Raises:
        InputFileError: the folder of ``path`` does not exist or cannot be written.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(f"{path}: no folder {folder} to write into")
    temp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="",
            dir=folder,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as handle:
            temp_name = handle.name
            written = export_calls(store, where, fmt, handle, raw_csv=raw_csv)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException as exc:
        if temp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise InputFileError(f"{path}: cannot write it ({exc.strerror})") from None
        raise
    return written

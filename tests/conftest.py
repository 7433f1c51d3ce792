"""Fixtures shared by every test: an isolated ATTUNE_HOME and a clean environment, the
hypothesis profiles, the PostgreSQL test server.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Shared helpers are the ``helpers`` package beside this file (``from helpers.reliability
# import …``), whatever pytest's import mode; test modules never import one another.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.fake_claude import FakeClaude

# --- hypothesis ----------------------------------------------------------------------------
# Property tests take their example count from a profile, never from a number of their own:
# ``quick`` by default (a developer's run), ``thorough`` under CI=true. HYPOTHESIS_PROFILE
# names one explicitly (``HYPOTHESIS_PROFILE=thorough pytest tests/reliability``).
# No deadline: on a shared two-core machine an example's wall time says nothing about it.
_PROFILE_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("quick", max_examples=50, **_PROFILE_SETTINGS)
settings.register_profile("thorough", max_examples=300, print_blob=True, **_PROFILE_SETTINGS)
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or (
    "thorough" if os.environ.get("CI") == "true" else "quick"
)
settings.load_profile(HYPOTHESIS_PROFILE)


# --- bytecode for the processes tests start ------------------------------------------------
# An installed attune runs from bytecode pip compiled at install. A checkout run with
# PYTHONDONTWRITEBYTECODE=1 (as CI machines often are) never caches any, so every `attune`
# process a test starts would compile each module it imports from source again: about a third
# more instructions per process (`telemetry record`: 794M against 492M). The controller
# compiles the package once, before any worker starts; an up-to-date file is skipped.


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: its controller did it
        return
    import compileall

    import attune_cli

    compileall.compile_dir(Path(attune_cli.__file__).parent, quiet=1)


def pytest_report_header(config: pytest.Config) -> str:
    examples = settings.default.max_examples
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} ({examples} examples a property)"


PROVIDER_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "ATTUNE_DEBUG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)


@pytest.fixture(autouse=True)
def attune_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs against its own empty attune home and no provider keys."""
    home = tmp_path / "attune-home"
    monkeypatch.setenv("ATTUNE_HOME", str(home))
    monkeypatch.setenv("ATTUNE_LEGACY_HOME", str(tmp_path / "legacy-attune"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


# --- PostgreSQL (the team store) ------------------------------------------------------------
# ``.ci/run`` starts the server and exports ATTUNE_TEST_PG_URL; elsewhere the default local
# server is tried. Without one, PostgreSQL tests skip with one line; under CI=true a skipped
# PostgreSQL test fails the run (``pytest_runtest_makereport`` below).

PG_SKIP_PREFIX = "PostgreSQL unavailable"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The test server's URL, or a skip naming why there is none."""
    url = os.environ.get("ATTUNE_TEST_PG_URL") or DEFAULT_PG_URL
    try:
        import psycopg
    except ImportError:
        pytest.skip(f"{PG_SKIP_PREFIX}: psycopg is not installed (pip install -e '.[postgres]')")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"{PG_SKIP_PREFIX}: {str(exc).splitlines()[0]}")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> object:
    """A URL whose search_path is a schema of this test's own, dropped afterwards."""
    import uuid

    import psycopg

    schema = f"attune_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in pg_server_url else "?"
    yield f"{pg_server_url}{joiner}options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- end-to-end tests ------------------------------------------------------------------------
# ``e2e``: real processes, real sockets, real pseudo-terminals, the real PostgreSQL server
# (``pytest -m e2e`` runs them alone, ``-m "not e2e"`` the rest). Every test under tests/e2e/
# is one, and so is every test that uses the PostgreSQL server; elsewhere a test carries the
# marker itself.


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e_folder = Path(__file__).resolve().parent / "e2e"
    for item in items:
        in_folder = e2e_folder in Path(str(item.path)).resolve().parents
        fixtures = getattr(item, "fixturenames", ())
        if in_folder or "pg_server_url" in fixtures or "pg_url" in fixtures:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Under CI=true a PostgreSQL test must run: its skip is turned into a failure."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") != "true" or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if PG_SKIP_PREFIX in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true and a PostgreSQL test was skipped: {reason}"


# --- Claude Code (the subscription path): see helpers/fake_claude.py -------------------------


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeClaude:
    """A stand-in ``claude`` (see ``FAKE_CLAUDE``) first on this test's PATH."""
    fake = FakeClaude(tmp_path)
    for name, value in fake.env.items():
        monkeypatch.setenv(name, value)
    return fake


# --- CPU time per test (``--cpu-durations=N``) ------------------------------------------------
# On a shared machine a test's wall time says more about the load than about the test; the CPU
# time of its process and of the processes it waited for does not. ``--cpu-durations=N`` lists
# the N dearest tests by that measure, and the run's total, as ``--durations`` does wall time.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-durations",
        type=int,
        default=None,
        metavar="N",
        help="show the N tests that used the most CPU (theirs and their subprocesses')",
    )


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    item.user_properties.append(("cpu_started_s", _cpu_s()))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    started = dict(item.user_properties).get("cpu_started_s")
    if isinstance(started, float):
        item.user_properties.append(("cpu_s", _cpu_s() - started))


_CPU_BY_TEST: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        spent = dict(report.user_properties).get("cpu_s")
        if isinstance(spent, float):
            _CPU_BY_TEST[report.nodeid] = spent


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count = terminalreporter.config.getoption("cpu_durations")
    if count is None or not _CPU_BY_TEST:
        return
    terminalreporter.section(f"most CPU: {count} tests (the test's process and its children)")
    for nodeid, spent in sorted(_CPU_BY_TEST.items(), key=lambda kv: -kv[1])[:count]:
        terminalreporter.write_line(f"{spent:7.2f}s cpu  {nodeid}")
    total = sum(_CPU_BY_TEST.values())
    terminalreporter.write_line(f"{total:7.1f}s cpu in all ({len(_CPU_BY_TEST)} tests)")

"""``attune doctor``: the checks a person runs when something does not work, in one report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attune_cli.core.auth_check import Verdict

if TYPE_CHECKING:
    import httpx

    from attune_cli.core.auth_check import ProviderCheck


@dataclass(frozen=True)
class Finding:
    """One check of the machine: its name, what it found, and a line of detail."""

    name: str
    verdict: Verdict
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "verdict": str(self.verdict), "detail": self.detail}


@dataclass(frozen=True)
class DoctorReport:
    """Every finding, and the provider checks (empty when the config could not be read)."""

    findings: tuple[Finding, ...]
    providers: tuple[ProviderCheck, ...]

    @property
    def ok(self) -> bool:
        """Nothing failed (unknown and skipped findings are warnings, not failures)."""
        return all(f.verdict is not Verdict.FAILED for f in self.findings) and all(
            p.ok for p in self.providers
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``doctor --json`` document."""
        return {
            "ok": self.ok,
            "checks": [f.as_dict() for f in self.findings],
            "providers": [p.as_dict() for p in self.providers],
        }


def run_doctor(client: httpx.Client | None = None) -> DoctorReport:
    """Run every check; never raises for what it finds (each becomes a finding).

    Args:
        client: the HTTP client for the provider checks (tests pass a mock).
    """
    from attune_cli.core.auth_check import check_providers
    from attune_cli.core.config_keys import unknown_keys
    from attune_cli.core.errors import AttuneError
    from attune_cli.core.telemetry.db import read_only_folder
    from attune_cli.core.workspace import Workspace

    findings: list[Finding] = []
    try:
        workspace = Workspace.load()
    except AttuneError as exc:
        findings.append(Finding("config", Verdict.FAILED, exc.message))
        return DoctorReport(tuple(findings), ())
    paths = workspace.paths
    config_file = paths.config_file
    if config_file.exists():
        unknown = unknown_keys(workspace.config, config_file)
        findings.append(
            Finding("config", Verdict.UNKNOWN, f"{len(unknown)} unknown keys in {config_file}")
            if unknown
            else Finding("config", Verdict.OK, str(config_file))
        )
    else:
        findings.append(Finding("config", Verdict.OK, f"none yet ({config_file}); defaults apply"))
    store = paths.telemetry_db
    probe = store if store.exists() else store.parent / ".attune-doctor"
    if store.parent.exists():
        read_only = read_only_folder(probe)
        findings.append(
            Finding("folder", Verdict.FAILED, read_only)
            if read_only
            else Finding("folder", Verdict.OK, f"{store.parent} is writable")
        )
    findings.append(_store_finding(workspace))
    try:
        providers = tuple(check_providers(workspace, client=client))
    except AttuneError as exc:
        findings.append(Finding("credentials", Verdict.FAILED, exc.message))
        providers = ()
    return DoctorReport(tuple(findings), providers)


def _store_finding(workspace: Any) -> Finding:
    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.errors import AttuneError

    store = workspace.paths.telemetry_db
    if not store.exists():
        return Finding(
            "telemetry store", Verdict.OK, f"none yet ({store}); the first call makes it"
        )
    try:
        with CircuitBreaker.from_workspace(workspace) as breaker:
            states = breaker.states()
    except AttuneError as exc:
        return Finding("telemetry store", Verdict.FAILED, exc.message)
    except Exception as exc:  # a damaged file: say so, the other checks still run
        return Finding("telemetry store", Verdict.FAILED, f"{store}: {type(exc).__name__}")
    opened = [s.key for s in states if s.state != "closed"]
    if opened:
        return Finding(
            "telemetry store",
            Verdict.UNKNOWN,
            f"{store}; open circuit breakers: {', '.join(opened)} (`attune route breakers`)",
        )
    return Finding("telemetry store", Verdict.OK, str(store))

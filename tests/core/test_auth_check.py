"""`auth test`'s core: one model-list request per provider, told apart by what answered."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from attune_cli.core.auth_check import CHECKERS, Verdict, check_providers
from attune_cli.core.errors import UsageError
from attune_cli.core.workspace import Workspace

GOOD = "sk-good-0000111122223333"


def handler(request: httpx.Request) -> httpx.Response:
    key = request.headers.get("x-api-key") or request.headers.get("authorization", "")[7:]
    if key != GOOD:
        return httpx.Response(401, json={"error": {"message": "invalid key"}})
    ids = ["claude-haiku-4-5", "claude-sonnet-4-5"] if "x-api-key" in request.headers else []
    return httpx.Response(200, json={"data": [{"id": i} for i in ids or ["gpt-5-mini"]]})


def client(fn=handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fn))


def run(env: dict[str, str], names: list[str] | None = None, fn=handler):
    return {
        c.provider: c
        for c in check_providers(Workspace.load(), names, client=client(fn), environ=env)
    }


def test_an_accepted_key_lists_the_registry_models_it_can_use() -> None:
    checks = run({"ANTHROPIC_API_KEY": GOOD})

    anthropic = checks["anthropic"]
    assert (anthropic.reachable, anthropic.key_accepted, anthropic.models) == (
        Verdict.OK,
        Verdict.OK,
        Verdict.OK,
    )
    assert anthropic.listed == ("claude-haiku-4-5", "claude-sonnet-4-5")
    assert "claude-opus-4-5" in anthropic.missing
    assert anthropic.ok and anthropic.key_hint == "sk-…3333"
    assert checks["openai"].reachable is Verdict.SKIPPED and checks["openai"].ok


def test_a_refused_key_is_told_from_an_unreachable_server() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    refused = run({"ANTHROPIC_API_KEY": "sk-bad-999988887777"})["anthropic"]
    unreachable = run({"ANTHROPIC_API_KEY": GOOD}, fn=down)["anthropic"]

    assert (refused.reachable, refused.key_accepted, refused.status) == (
        Verdict.OK,
        Verdict.FAILED,
        401,
    )
    assert not refused.ok
    assert (unreachable.reachable, unreachable.key_accepted) == (Verdict.FAILED, Verdict.UNKNOWN)
    assert "cannot connect" in (unreachable.detail or "") and not unreachable.ok


def test_an_answer_that_cannot_tell_is_unknown_not_accepted() -> None:
    checks = run(
        {"OPENAI_API_KEY": GOOD}, fn=lambda request: httpx.Response(404, text="no such path")
    )

    assert checks["openai"].key_accepted is Verdict.UNKNOWN
    assert "cannot tell" in (checks["openai"].detail or "")


def test_a_named_provider_is_checked_even_unconfigured_and_an_unknown_one_refused() -> None:
    named = run({}, ["openai"])

    assert named["openai"].key_accepted is Verdict.FAILED
    assert "no key was sent" in (named["openai"].detail or "")
    with pytest.raises(UsageError, match="unknown provider 'nope'"):
        run({}, ["nope"])


def test_the_key_is_never_in_the_report() -> None:
    report = json.dumps([c.as_dict() for c in run({"ANTHROPIC_API_KEY": GOOD}).values()])

    assert GOOD not in report


def test_each_kind_of_provider_api_has_a_checker() -> None:
    assert set(CHECKERS) >= {"anthropic", "openai"}


def test_a_local_server_without_a_key_is_configured_by_its_base_url(attune_home: Path) -> None:
    checks = run(
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
        fn=lambda r: httpx.Response(200, json={"data": [{"id": "llama3.1:8b"}]}),
    )

    local = checks["openai"]
    assert local.configured and local.reachable is Verdict.OK
    assert local.key_accepted is Verdict.OK and local.served == 1

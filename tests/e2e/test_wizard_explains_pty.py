"""The wizard explains itself, as a person sees it in a real pseudo-terminal."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from helpers.terminal import Terminal, finish, spawn_attune

pytestmark = pytest.mark.e2e

DOWN, ENTER = "\x1b[B", "\r"
KEY = "sk-ant-test-0123456789"
OTHER_KEY = "sk-ant-other-9876543210"


def spawn(*args: str) -> Terminal:
    return spawn_attune(*args, dimensions=(60, 160))


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)


def test_the_first_run_says_what_it_sets_up_and_where(attune_home: Path) -> None:
    child = spawn("auth", "setup")
    child.expect("Which Claude subscription")
    opening = plain(child.before)
    child.sendcontrol("c")
    finish(child)

    assert "This sets up how attune reaches Claude" in opening
    assert str(attune_home / "config.toml") in opening


def test_a_rerun_says_what_is_set_up_and_enter_keeps_it(attune_home: Path) -> None:
    attune_home.mkdir(parents=True)
    (attune_home / "config.toml").write_text(
        '[auth]\nsubscription_tier = "max"\ndefault_mode = "api"\nsetup_completed = true\n'
    )
    child = spawn("auth", "setup")
    child.expect("Which Claude subscription")
    opening = plain(child.before)
    child.send(ENTER)
    child.expect("How should attune send work")
    child.send(ENTER)
    child.expect("Store an API key")
    child.send("\x1b[A" + ENTER)  # up from anthropic to "Skip"
    child.expect("Save to")
    child.send("y")
    status, _ = finish(child)

    assert "already set up (tier max, mode api); Enter keeps each answer" in opening
    assert status == 0
    auth = tomllib.loads((attune_home / "config.toml").read_text())["auth"]
    assert (auth["subscription_tier"], auth["default_mode"]) == ("max", "api")


def test_the_default_tier_is_the_one_auth_status_shows(attune_home: Path) -> None:
    status = spawn("auth", "status")
    _, shown = finish(status)
    shown_tier = re.search(r"Subscription tier\s+(\w+)", plain(shown))
    assert shown_tier is not None

    child = spawn("auth", "setup", "--mode", "api")
    child.expect("Which Claude subscription")
    child.send(ENTER)  # the default, untouched
    child.expect("Store an API key")
    child.send("\x1b[A" + ENTER)
    child.expect("Save to")
    child.send("y")
    finish(child)

    auth = tomllib.loads((attune_home / "config.toml").read_text())["auth"]
    assert auth["subscription_tier"] == shown_tier.group(1)


def test_api_only_gets_one_recommendation_and_no_subscription_offer(attune_home: Path) -> None:
    child = spawn("auth", "setup")
    child.expect("Which Claude subscription")
    child.send(DOWN * 3 + ENTER)  # pro → max → enterprise → api_only
    child.expect("How should attune send work")
    table = plain(child.before)
    child.expect("Auto: choose")
    menu = plain(child.before + child.after)
    child.sendcontrol("c")
    finish(child)

    assert "plan you already pay for" not in table
    assert "You have no subscription" in table
    # The table and the list recommend the same mode, once each.
    assert re.search(r"API\s*│?\s*[^\n]*\n[^\n]*\(recommended\)", table)
    assert table.count("(recommended)") == 1
    assert menu.count("(recommended)") == 1
    assert "API: pay per token with an API key (recommended)" in menu
    assert "Subscription: spend my plan" not in menu


def test_a_second_login_asks_before_replacing_the_stored_key(attune_home: Path) -> None:
    first = spawn("auth", "login", "anthropic")
    first.expect("API key for anthropic")
    first.sendline(KEY)
    assert finish(first)[0] == 0

    again = spawn("auth", "login", "anthropic")
    again.expect(r"already stored\. Replace it\? \[y/N\]")
    again.sendline("n")
    status, rest = finish(again)

    assert status == 1 and "the stored key is kept" in rest
    assert KEY in (attune_home / "credentials.toml").read_text()

    replace = spawn("auth", "login", "anthropic")
    replace.expect("Replace it")
    replace.sendline("y")
    replace.expect("API key for anthropic")
    replace.sendline(OTHER_KEY)
    assert finish(replace)[0] == 0
    assert OTHER_KEY in (attune_home / "credentials.toml").read_text()

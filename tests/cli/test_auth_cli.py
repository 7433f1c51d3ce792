"""`attune auth …` through CliRunner: flags, exit codes, every --json shape, files written."""

from __future__ import annotations

import json
import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from attune_cli.cli import wizard
from attune_cli.cli.app import app

runner = CliRunner()
KEY = "sk-ant-test-0123456789"
STATUS_KEYS = {
    "subscription_tier",
    "default_mode",
    "setup_completed",
    "small_module_threshold",
    "medium_module_threshold",
    "config_file",
    "providers",
}
PROVIDER_KEYS = {"key_source", "key_hint", "base_url"}
RECOMMEND_KEYS = {
    "file",
    "lines",
    "size_category",
    "recommended_mode",
    "estimated_tokens",
    "monetary_cost_usd",
    "fits_in_context",
}


def attune(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


def config_of(home: Path) -> dict[str, Any]:
    return tomllib.loads((home / "config.toml").read_text())


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    return path


def write_python(path: Path, lines: int) -> Path:
    path.write_text("# generated\n" + "".join(f"v{i} = {i}\n" for i in range(lines)))
    return path


# setup


def test_setup_with_every_flag_writes_the_strategy(attune_home: Path) -> None:
    result = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    assert result.exit_code == 0, result.stderr
    assert config_of(attune_home)["auth"] == {
        "subscription_tier": "max",
        "default_mode": "auto",
        "setup_completed": True,
        "small_module_threshold": 500,
        "medium_module_threshold": 2000,
        "loc_to_tokens_multiplier": 4.0,
        "prefer_subscription": True,
    }
    assert "Saved" in result.stderr
    assert result.stdout == ""


def test_tier_and_mode_accept_any_case(attune_home: Path) -> None:
    result = attune("auth", "setup", "--tier", "API_ONLY", "--mode", "Api", "--yes")
    assert result.exit_code == 0, result.stderr
    assert config_of(attune_home)["auth"]["subscription_tier"] == "api_only"


def test_status_json_reports_what_setup_saved(attune_home: Path) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    result = attune("auth", "status", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert set(document) >= STATUS_KEYS
    assert document["subscription_tier"] == "max"
    assert document["default_mode"] == "auto"
    assert document["setup_completed"] is True
    assert document["small_module_threshold"] == 500
    assert document["medium_module_threshold"] == 2000
    assert document["config_file"] == str(attune_home / "config.toml")
    assert set(document["providers"]) >= {"anthropic", "openai"}
    for provider in document["providers"].values():
        assert set(provider) >= PROVIDER_KEYS
        assert provider["key_source"] is None and provider["key_hint"] is None
    assert document["providers"]["anthropic"]["base_url"] == "https://api.anthropic.com"


def test_setup_without_a_terminal_and_without_flags_names_them_and_writes_nothing(
    attune_home: Path,
) -> None:
    result = attune("auth", "setup")
    assert result.exit_code == 2
    for flag in ("--tier", "--mode", "--yes"):
        assert flag in result.stderr
    assert not (attune_home / "config.toml").exists()


def test_setup_without_a_terminal_names_only_the_missing_flag(attune_home: Path) -> None:
    result = attune("auth", "setup", "--tier", "max", "--mode", "auto")
    assert result.exit_code == 2
    error = result.stderr.splitlines()[0]
    assert "--yes" in error
    assert "--tier" not in error


def test_setup_with_a_bad_tier_names_the_flag() -> None:
    result = attune("auth", "setup", "--tier", "gold", "--mode", "auto", "--yes")
    assert result.exit_code == 2
    assert "--tier" in result.stderr


def test_with_key_stdin_needs_a_provider() -> None:
    result = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--with-key-stdin")
    assert result.exit_code == 2
    assert "--with-key-stdin" in result.stderr
    assert "--provider" in result.stderr


def test_setup_refuses_an_unknown_provider() -> None:
    result = attune(
        "auth", "setup", "--tier", "max", "--mode", "auto", "--provider", "acme", "--yes"
    )
    assert result.exit_code == 2
    assert "--provider" in result.stderr
    assert "acme" in result.stderr


def test_setup_can_store_a_key_from_stdin(attune_home: Path) -> None:
    result = attune(
        *("auth", "setup", "--tier", "pro", "--mode", "api", "--provider", "anthropic"),
        *("--with-key-stdin", "--yes"),
        input=KEY + "\n",
    )
    assert result.exit_code == 0, result.stderr
    credentials = attune_home / "credentials.toml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert tomllib.loads(credentials.read_text()) == {"anthropic": {"api_key": KEY}}
    assert KEY not in result.stdout + result.stderr


def test_setup_with_a_provider_whose_key_is_in_the_environment_needs_no_key(
    attune_home: Path,
) -> None:
    result = attune(
        *("auth", "setup", "--tier", "max", "--mode", "auto", "--provider", "openai", "--yes"),
        env={"OPENAI_API_KEY": "sk-env-key-abcd1234"},
    )
    assert result.exit_code == 0, result.stderr
    assert "OPENAI_API_KEY" in result.stderr
    assert not (attune_home / "credentials.toml").exists()


def test_a_users_comment_in_config_survives_setup(attune_home: Path) -> None:
    write_config(
        attune_home,
        "# written by me, keep it\n[auth]\nsubscription_tier = 'pro'  # work plan\n"
        "\n[routing]\nwindow_days = 14  # two weeks\n",
    )
    result = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    assert result.exit_code == 0, result.stderr
    text = (attune_home / "config.toml").read_text()
    assert "# written by me, keep it" in text
    assert 'subscription_tier = "max"  # work plan' in text
    assert "window_days = 14  # two weeks" in text


CORRUPT = "[auth\nsubscription_tier = 'max'\n"


@pytest.mark.parametrize(
    "args",
    [
        ("auth", "status"),
        ("auth", "status", "--json"),
        ("auth", "setup", "--tier", "max", "--mode", "auto", "--yes"),
        ("auth", "reset", "--yes"),
        ("auth", "recommend", "."),
        ("auth", "logout", "anthropic"),
    ],
)
def test_a_corrupt_config_is_exit_2_naming_the_file_and_is_left_alone(
    attune_home: Path, args: Sequence[str]
) -> None:
    path = write_config(attune_home, CORRUPT)
    result = attune(*args)
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == CORRUPT


def test_an_invalid_value_names_file_key_and_value(attune_home: Path) -> None:
    path = write_config(attune_home, "[auth]\nsubscription_tier = 'platinum'\n")
    result = attune("auth", "status")
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert "auth.subscription_tier" in result.stderr
    assert "platinum" in result.stderr
    assert "attune auth reset" in result.stderr


# status


def test_status_on_a_fresh_home_says_setup_is_needed(attune_home: Path) -> None:
    result = attune("auth", "status")
    assert result.exit_code == 0
    assert "attune auth setup" in result.stdout
    assert json.loads(attune("auth", "status", "--json").stdout)["setup_completed"] is False
    assert not (attune_home / "config.toml").exists()


def test_status_shows_tier_mode_sizes_providers_and_paths(attune_home: Path) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    attune("auth", "login", "anthropic", "--with-key-stdin", input=KEY)
    result = attune("auth", "status")
    assert result.exit_code == 0
    out = result.stdout
    for expected in (
        "max",
        "auto",
        "< 500",
        "≥ 2,000",
        "subscription",
        "anthropic",
        "sk-…6789",
        "credentials.toml",
        "openai",
        str(attune_home / "config.toml"),
    ):
        assert expected in out, expected
    assert KEY not in out + result.stderr


def test_status_says_where_each_key_comes_from(attune_home: Path) -> None:
    attune("auth", "login", "anthropic", "--with-key-stdin", input=KEY)
    attune("auth", "login", "openai", "--with-key-stdin", input="sk-proj-stored-0000zzzz")
    result = attune("auth", "status", "--json", env={"OPENAI_API_KEY": "sk-proj-env-1111yyyy"})
    providers = json.loads(result.stdout)["providers"]
    assert providers["anthropic"]["key_source"] == "stored"
    assert providers["anthropic"]["key_hint"] == "sk-…6789"
    assert providers["openai"]["key_source"] == "env"
    assert providers["openai"]["key_hint"] == "sk-…yyyy"
    assert "sk-proj-env-1111yyyy" not in result.stdout
    assert KEY not in result.stdout


def test_status_shows_a_base_url_override_from_the_environment() -> None:
    result = attune(
        "auth", "status", "--json", env={"OPENAI_BASE_URL": "http://localhost:11434/v1"}
    )
    providers = json.loads(result.stdout)["providers"]
    assert providers["openai"]["base_url"] == "http://localhost:11434/v1"


def test_status_refuses_a_credentials_file_others_can_read(attune_home: Path) -> None:
    attune("auth", "login", "anthropic", "--with-key-stdin", input=KEY)
    credentials = attune_home / "credentials.toml"
    credentials.chmod(0o644)
    result = attune("auth", "status")
    assert result.exit_code == 2
    assert f"chmod 600 {credentials}" in result.stderr
    assert KEY not in result.stderr + result.stdout


# recommend


def test_recommend_a_3000_line_file_for_a_max_subscriber_says_large_api(
    attune_home: Path, tmp_path: Path
) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    source = write_python(tmp_path / "big.py", 3000)
    result = attune("auth", "recommend", str(source), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= RECOMMEND_KEYS
    assert document["file"] == str(source)
    assert document["lines"] == 3000
    assert document["size_category"] == "large"
    assert document["recommended_mode"] == "api"
    assert document["estimated_tokens"] == 12_000
    assert document["monetary_cost_usd"] > 0
    assert document["fits_in_context"] is True
    assert document["priced_model"] == "claude-sonnet-4-5"

    human = attune("auth", "recommend", str(source))
    assert human.exit_code == 0
    assert "large" in human.stdout and "api" in human.stdout
    assert "3,000 lines" in human.stdout
    assert "claude-sonnet-4-5" in human.stdout


def test_recommend_prices_a_model_at_the_price_the_user_gave_it(
    attune_home: Path, tmp_path: Path
) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "api", "--yes")
    source = write_python(tmp_path / "big.py", 3000)
    before = json.loads(attune("auth", "recommend", str(source), "--json").stdout)
    config = attune_home / "config.toml"
    config.write_text(
        config.read_text()
        + '\n[models."claude-sonnet-4-5"]\ninput_usd_per_mtok = 1000.0\n'
        + "output_usd_per_mtok = 2000.0\n"
    )
    result = attune("auth", "recommend", str(source), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["priced_model"] == "claude-sonnet-4-5"
    # 12,000 tokens in at $1,000 per million, 3,000 out at $2,000 per million.
    assert document["api_cost_usd"] == pytest.approx(18.0)
    assert document["monetary_cost_usd"] == pytest.approx(18.0)
    assert before["api_cost_usd"] < 1.0

    human = attune("auth", "recommend", str(source))
    assert human.exit_code == 0, human.stderr
    assert "$18.00" in human.stdout


def test_recommend_a_small_file_for_a_max_subscriber_costs_nothing(
    attune_home: Path, tmp_path: Path
) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    source = write_python(tmp_path / "small.py", 120)
    document = json.loads(attune("auth", "recommend", str(source), "--json").stdout)
    assert (document["size_category"], document["recommended_mode"]) == ("small", "subscription")
    assert document["monetary_cost_usd"] == 0.0


def test_recommend_sums_a_folders_source_files(tmp_path: Path) -> None:
    write_python(tmp_path / "a.py", 400)
    write_python(tmp_path / "b.py", 400)
    document = json.loads(attune("auth", "recommend", str(tmp_path), "--json").stdout)
    assert (document["lines"], document["files"], document["size_category"]) == (800, 2, "medium")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.py", "no such file"),
        (lambda d: (d / "blob.py").write_bytes(b"\x00\x01\x02") and d / "blob.py", "binary"),
        (lambda d: d, "no readable source file"),
    ],
)
def test_recommend_bad_input_is_exit_2_naming_it(tmp_path: Path, make: Any, expected: str) -> None:
    target = tmp_path / "input"
    target.mkdir()
    path = make(target)
    result = attune("auth", "recommend", str(path))
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


# login / logout


def test_login_from_stdin_stores_a_0600_file_and_shows_only_a_hint(attune_home: Path) -> None:
    result = attune("auth", "login", "anthropic", "--with-key-stdin", input=KEY)
    assert result.exit_code == 0, result.stderr
    credentials = attune_home / "credentials.toml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(attune_home.stat().st_mode) == 0o700
    assert "sk-…6789" in result.stderr
    assert KEY not in result.stdout + result.stderr


def test_login_says_the_environment_wins_when_its_variable_is_set() -> None:
    result = attune(
        "auth",
        "login",
        "anthropic",
        "--with-key-stdin",
        input=KEY,
        env={"ANTHROPIC_API_KEY": "sk-ant-env-key-9999"},
    )
    assert result.exit_code == 0
    assert "ANTHROPIC_API_KEY" in result.stderr
    assert "wins" in result.stderr


def test_login_without_a_terminal_needs_with_key_stdin(attune_home: Path) -> None:
    result = attune("auth", "login", "anthropic")
    assert result.exit_code == 2
    assert "--with-key-stdin" in result.stderr
    assert not (attune_home / "credentials.toml").exists()


def test_login_refuses_an_empty_key(attune_home: Path) -> None:
    result = attune("auth", "login", "anthropic", "--with-key-stdin", input="\n")
    assert result.exit_code == 2
    assert "empty" in result.stderr
    assert not (attune_home / "credentials.toml").exists()


def test_login_refuses_an_unknown_provider() -> None:
    result = attune("auth", "login", "acme", "--with-key-stdin", input=KEY)
    assert result.exit_code == 2
    assert "acme" in result.stderr
    assert "anthropic" in result.stderr


def test_logout_removes_the_stored_key(attune_home: Path) -> None:
    attune("auth", "login", "anthropic", "--with-key-stdin", input=KEY)
    attune("auth", "login", "openai", "--with-key-stdin", input="sk-proj-0000abcdabcd")
    result = attune("auth", "logout", "anthropic")
    assert result.exit_code == 0
    assert "Removed" in result.stderr
    providers = json.loads(attune("auth", "status", "--json").stdout)["providers"]
    assert providers["anthropic"]["key_source"] is None
    assert providers["openai"]["key_source"] == "stored"


def test_logout_with_nothing_stored_says_so() -> None:
    result = attune("auth", "logout", "openai")
    assert result.exit_code == 0
    assert "nothing removed" in result.stderr


def test_logout_of_an_unknown_provider_is_a_usage_error() -> None:
    result = attune("auth", "logout", "acme")
    assert result.exit_code == 2
    assert "acme" in result.stderr


# reset


def test_reset_with_yes_removes_the_auth_settings_only(attune_home: Path) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    with (attune_home / "config.toml").open("a") as handle:
        handle.write("\n# my routing\n[routing]\nwindow_days = 3\n")
    result = attune("auth", "reset", "--yes")
    assert result.exit_code == 0
    config = config_of(attune_home)
    assert config["auth"] == {}
    assert config["routing"] == {"window_days": 3}
    assert "# my routing" in (attune_home / "config.toml").read_text()


def test_reset_without_a_terminal_requires_yes(attune_home: Path) -> None:
    attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    result = attune("auth", "reset")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert config_of(attune_home)["auth"]["subscription_tier"] == "max"


def test_reset_with_nothing_to_reset_is_fine(attune_home: Path) -> None:
    result = attune("auth", "reset", "--yes")
    assert result.exit_code == 0
    assert "Nothing to reset" in result.stderr


def test_reset_also_clears_an_invalid_strategy(attune_home: Path) -> None:
    write_config(attune_home, "[auth]\nsubscription_tier = 'platinum'\n")
    assert attune("auth", "reset", "--yes").exit_code == 0
    assert attune("auth", "status").exit_code == 0


# The wizard through the command, with a scripted prompter


class ScriptedPrompter:
    """Answers questions from a script; fails the test on a question it did not expect."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def _next(self, message: str) -> Any:
        self.asked.append(message)
        if not self.answers:
            raise AssertionError(f"unexpected question: {message}")
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def select(
        self, message: str, choices: Sequence[tuple[str, str]], default: str | None = None
    ) -> str:
        value = self._next(message)
        assert value in [v for _, v in choices], (value, choices)
        return str(value)

    def confirm(self, message: str, default: bool = True) -> bool:
        return bool(self._next(message))

    def password(self, message: str) -> str:
        return str(self._next(message))


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend stdin is a terminal and answer the wizard from a script."""

    def use(prompter: ScriptedPrompter) -> ScriptedPrompter:
        monkeypatch.setattr("attune_cli.cli.auth.stdin_is_terminal", lambda: True)
        monkeypatch.setattr(wizard, "make_prompter", lambda: prompter)
        return prompter

    return use


def test_in_a_terminal_with_every_flag_nothing_is_asked(attune_home: Path, terminal: Any) -> None:
    prompter = terminal(ScriptedPrompter())
    result = attune("auth", "setup", "--tier", "max", "--mode", "auto", "--yes")
    assert result.exit_code == 0, result.stderr
    assert prompter.asked == []
    assert config_of(attune_home)["auth"]["subscription_tier"] == "max"


def test_the_wizard_asks_what_the_flags_left_out(attune_home: Path, terminal: Any) -> None:
    prompter = terminal(ScriptedPrompter("enterprise", "subscription", "", True))
    result = attune("auth", "setup")
    assert result.exit_code == 0, result.stderr
    assert len(prompter.asked) == 4
    auth = config_of(attune_home)["auth"]
    assert (auth["subscription_tier"], auth["default_mode"]) == ("enterprise", "subscription")
    # The comparison table was shown before the mode question.
    assert "Subscription, API or Auto" in result.stderr


def test_the_wizard_stores_a_key_typed_at_the_hidden_prompt(
    attune_home: Path, terminal: Any
) -> None:
    terminal(ScriptedPrompter("pro", "api", "anthropic", KEY, True))
    result = attune("auth", "setup")
    assert result.exit_code == 0, result.stderr
    assert tomllib.loads((attune_home / "credentials.toml").read_text()) == {
        "anthropic": {"api_key": KEY}
    }
    assert "sk-…6789" in result.stderr
    assert KEY not in result.stderr + result.stdout


def test_declining_the_final_confirm_saves_nothing(attune_home: Path, terminal: Any) -> None:
    terminal(ScriptedPrompter("max", "auto", "anthropic", KEY, False))
    result = attune("auth", "setup")
    assert result.exit_code == 1
    assert "Nothing was saved" in result.stderr
    assert not (attune_home / "config.toml").exists()
    assert not (attune_home / "credentials.toml").exists()


def test_ctrl_c_in_the_wizard_exits_130_and_saves_nothing(attune_home: Path, terminal: Any) -> None:
    terminal(ScriptedPrompter("max", KeyboardInterrupt()))
    result = attune("auth", "setup")
    assert result.exit_code == 130
    assert "nothing was saved" in result.stderr
    assert not (attune_home / "config.toml").exists()


def test_the_wizard_offers_the_older_tools_settings(
    attune_home: Path, tmp_path: Path, terminal: Any
) -> None:
    legacy = tmp_path / "legacy-attune" / "auth_strategy.json"
    legacy.parent.mkdir()
    legacy.write_text(
        json.dumps(
            {
                "subscription_tier": "max",
                "default_mode": "auto",
                "small_module_threshold": 300,
                "medium_module_threshold": 1200,
            }
        )
    )
    # Import? yes → tier and mode come from the file; no provider; save.
    prompter = terminal(ScriptedPrompter(True, "", True))
    result = attune("auth", "setup")
    assert result.exit_code == 0, result.stderr
    assert "older attune" in result.stderr
    assert prompter.asked[0] == "Import them?"
    auth = config_of(attune_home)["auth"]
    assert (auth["subscription_tier"], auth["small_module_threshold"]) == ("max", 300)
    assert auth["setup_completed"] is True
    assert auth["metadata"]["imported_from"] == str(legacy)


def test_a_broken_legacy_file_is_not_offered_and_does_not_block_setup(
    attune_home: Path, tmp_path: Path, terminal: Any
) -> None:
    legacy = tmp_path / "legacy-attune" / "auth_strategy.json"
    legacy.parent.mkdir()
    legacy.write_text("{broken")
    prompter = terminal(ScriptedPrompter("max", "auto", "", True))
    result = attune("auth", "setup")
    assert result.exit_code == 0, result.stderr
    assert "Import them?" not in prompter.asked
    assert str(legacy) in result.stderr


# help


@pytest.mark.parametrize("command", ["setup", "status", "reset", "recommend", "login", "logout"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = attune("auth", command, "--help")
    assert result.exit_code == 0
    assert f"attune auth {command}" in result.stdout

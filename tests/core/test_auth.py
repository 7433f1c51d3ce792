"""The auth strategy: routing by tier and size, estimates priced from the registry, TOML
round-trips that keep the user's file, validation that names file/key/value, legacy import."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attune_cli.core.auth import (
    AuthMode,
    AuthStrategy,
    ModuleSize,
    SubscriptionTier,
    legacy_strategy_file,
    load_legacy,
    reset_strategy,
)
from attune_cli.core.config import read_toml
from attune_cli.core.errors import ConfigError, InputFileError
from attune_cli.core.estimate import compare_modes, estimate_cost, priced_model, recommend
from attune_cli.core.paths import resolve_paths
from attune_cli.core.registry import load_registry

REGISTRY = load_registry({}, Path("config.toml"))


def config_path(home: Path) -> Path:
    return resolve_paths({"ATTUNE_HOME": str(home)}).config_file


# Routing


@pytest.mark.parametrize(
    ("tier", "lines", "expected"),
    [
        ("max", 10, "subscription"),
        ("max", 499, "subscription"),
        ("max", 500, "subscription"),  # medium, subscription preferred
        ("max", 1999, "subscription"),
        ("max", 2000, "api"),
        ("max", 3000, "api"),
        ("enterprise", 100, "subscription"),
        ("enterprise", 5000, "api"),
        ("free", 100, "subscription"),
        ("pro", 10, "api"),  # a Pro quota runs out fast: pay per token
        ("pro", 5000, "api"),
        ("api_only", 10, "api"),
    ],
)
def test_auto_mode_routes_by_tier_and_size(tier: str, lines: int, expected: str) -> None:
    strategy = AuthStrategy(subscription_tier=SubscriptionTier(tier), default_mode=AuthMode.AUTO)
    assert strategy.get_recommended_mode(lines) is AuthMode(expected)


@pytest.mark.parametrize("mode", [AuthMode.SUBSCRIPTION, AuthMode.API])
def test_a_chosen_mode_is_respected_whatever_the_size(mode: AuthMode) -> None:
    strategy = AuthStrategy(subscription_tier=SubscriptionTier.MAX, default_mode=mode)
    assert {strategy.get_recommended_mode(n) for n in (1, 1000, 100_000)} == {mode}


def test_medium_modules_go_to_the_api_when_subscription_is_not_preferred() -> None:
    strategy = AuthStrategy(subscription_tier="max", prefer_subscription=False)
    assert strategy.get_recommended_mode(100) is AuthMode.SUBSCRIPTION
    assert strategy.get_recommended_mode(1000) is AuthMode.API


def test_size_categories_follow_the_configured_thresholds() -> None:
    strategy = AuthStrategy(small_module_threshold=100, medium_module_threshold=300)
    assert [strategy.size_category(n) for n in (99, 100, 299, 300)] == [
        ModuleSize.SMALL,
        ModuleSize.MEDIUM,
        ModuleSize.MEDIUM,
        ModuleSize.LARGE,
    ]


def test_size_routes_say_what_each_size_gets() -> None:
    routes = AuthStrategy(subscription_tier="max").size_routes()
    assert [(r.size.value, r.lines, r.mode.value) for r in routes] == [
        ("small", "< 500", "subscription"),
        ("medium", "500 – 1,999", "subscription"),
        ("large", "≥ 2,000", "api"),
    ]


def test_equal_thresholds_leave_no_medium_size() -> None:
    routes = AuthStrategy(small_module_threshold=800, medium_module_threshold=800).size_routes()
    assert [r.size for r in routes] == [ModuleSize.SMALL, ModuleSize.LARGE]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"small_module_threshold": -1},
        {"small_module_threshold": 600, "medium_module_threshold": 500},
        {"loc_to_tokens_multiplier": 0},
        {"subscription_tier": "platinum"},
    ],
)
def test_the_constructor_refuses_impossible_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AuthStrategy(**kwargs)


# Estimates


def test_tokens_are_lines_times_the_multiplier() -> None:
    assert AuthStrategy().estimate_tokens(1000) == 4000
    assert AuthStrategy(loc_to_tokens_multiplier=3.5).estimate_tokens(3) == 11  # rounded up


def test_api_cost_is_priced_from_the_registry_model() -> None:
    estimate = estimate_cost(AuthStrategy(subscription_tier="max"), 3000, registry=REGISTRY)
    model = REGISTRY.model("claude-sonnet-4-5")
    assert model is not None
    assert estimate.model == "claude-sonnet-4-5"
    assert estimate.mode is AuthMode.API
    assert estimate.input_tokens == 12_000
    assert estimate.output_tokens == 3_000
    assert estimate.api_cost_usd == pytest.approx(model.cost_usd(12_000, 3_000))
    assert estimate.monetary_cost_usd == estimate.api_cost_usd
    assert estimate.context_window == model.context_window
    assert estimate.fits_in_context is True


def test_a_price_override_in_config_changes_the_estimate() -> None:
    config = {"models": {"claude-sonnet-4-5": {"input_usd_per_mtok": 30.0}}}
    registry = load_registry(config, Path("config.toml"))
    cheap = estimate_cost(AuthStrategy(), 1000, AuthMode.API, registry=REGISTRY)
    dear = estimate_cost(AuthStrategy(), 1000, AuthMode.API, registry=registry)
    assert dear.api_cost_usd is not None and cheap.api_cost_usd is not None
    assert dear.api_cost_usd == pytest.approx(cheap.api_cost_usd + 4000 * 27.0 / 1e6)


def test_no_estimate_quietly_prices_on_the_built_in_registry() -> None:
    # Built-in prices ignore the user's [models]: every estimate must be handed the registry.
    strategy = AuthStrategy()
    with pytest.raises(TypeError, match="registry"):
        estimate_cost(strategy, 1000, AuthMode.API)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="registry"):
        priced_model(strategy)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="registry"):
        compare_modes(strategy, 1000)  # type: ignore[call-arg]


def test_a_subscription_costs_no_money_but_the_api_price_is_still_shown() -> None:
    estimate = estimate_cost(
        AuthStrategy(subscription_tier="max"), 100, AuthMode.SUBSCRIPTION, registry=REGISTRY
    )
    assert estimate.monetary_cost_usd == 0.0
    assert estimate.api_cost_usd is not None and estimate.api_cost_usd > 0


def test_estimate_model_picks_the_model_to_price_on() -> None:
    strategy = AuthStrategy(estimate_model="gpt-5-pro")
    estimate = estimate_cost(strategy, 1000, AuthMode.API, registry=REGISTRY)
    assert estimate.model == "gpt-5-pro"
    assert estimate.context_window == 400_000


def test_an_unknown_estimate_model_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[auth]\nestimate_model = "gpt-9"\n')
    strategy = AuthStrategy.load(path)
    with pytest.raises(ConfigError) as caught:
        estimate_cost(strategy, 1000, registry=REGISTRY)
    assert str(path) in str(caught.value)
    assert "auth.estimate_model" in str(caught.value)
    assert "gpt-9" in str(caught.value)


def test_a_module_too_large_for_the_context_window_is_flagged() -> None:
    estimate = estimate_cost(AuthStrategy(), 60_000, AuthMode.API, registry=REGISTRY)
    assert estimate.fits_in_context is False


def test_the_comparison_covers_the_three_modes_with_the_thresholds() -> None:
    options = compare_modes(AuthStrategy(subscription_tier="max"), 1000, registry=REGISTRY)
    assert list(options) == [AuthMode.SUBSCRIPTION, AuthMode.API, AuthMode.AUTO]
    assert options[AuthMode.API].estimate.api_cost_usd is not None
    assert "claude-sonnet-4-5" in options[AuthMode.API].cost
    assert any("500" in pro for pro in options[AuthMode.AUTO].pros)
    assert any("2,000" in pro for pro in options[AuthMode.AUTO].pros)
    assert options[AuthMode.AUTO].estimate.mode is AuthMode.SUBSCRIPTION
    assert all(option.pros and option.cons for option in options.values())


# Persistence


def test_a_missing_file_gives_defaults_not_set_up(tmp_path: Path) -> None:
    strategy = AuthStrategy.load(tmp_path / "config.toml")
    assert strategy == AuthStrategy()
    assert strategy.setup_completed is False
    assert not (tmp_path / "config.toml").exists()


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    saved = AuthStrategy(
        subscription_tier="enterprise",
        default_mode="subscription",
        small_module_threshold=300,
        medium_module_threshold=1500,
        loc_to_tokens_multiplier=3.0,
        setup_completed=True,
        prefer_subscription=False,
        estimate_model="claude-opus-4-5",
    )
    saved.save(path)
    assert AuthStrategy.load(path) == saved
    assert read_toml(path)["auth"]["subscription_tier"] == "enterprise"


def test_save_defaults_to_this_processs_config_file(attune_home: Path) -> None:
    AuthStrategy(subscription_tier="max", setup_completed=True).save()
    assert AuthStrategy.load().subscription_tier is SubscriptionTier.MAX
    assert (attune_home / "config.toml").exists()


def test_save_keeps_comments_order_other_tables_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "# my attune settings\n"
        "[routing]\n"
        "window_days = 7  # a week is enough\n"
        "\n"
        "[auth]\n"
        "subscription_tier = 'pro'  # the work plan\n"
        "my_note = 'keep me'\n"
        "default_mode = 'api'\n"
        "\n"
        '[models."llama3.1:8b"]\n'
        "provider = 'openai'\n"
        "tier = 'cheap'\n"
    )
    AuthStrategy(subscription_tier="max", default_mode="auto", setup_completed=True).save(path)
    text = path.read_text()
    assert "# my attune settings" in text
    assert "window_days = 7  # a week is enough" in text
    assert 'subscription_tier = "max"  # the work plan' in text
    assert "my_note = 'keep me'" in text
    assert '[models."llama3.1:8b"]' in text
    # Key order inside [auth] is the user's; new keys come after theirs.
    assert text.index("subscription_tier") < text.index("my_note") < text.index("default_mode")
    assert text.index("[routing]") < text.index("[auth]") < text.index("[models.")
    assert read_toml(path)["auth"]["default_mode"] == "auto"


def test_saving_an_unchanged_strategy_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    AuthStrategy(subscription_tier="max", setup_completed=True).save(path)
    before = path.read_text()
    AuthStrategy.load(path).save(path)
    assert path.read_text() == before


def test_save_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    AuthStrategy().save(path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "config.toml"
    ]


def test_save_refuses_to_rewrite_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[auth\nsubscription_tier = 'max'\n")
    with pytest.raises(ConfigError) as caught:
        AuthStrategy().save(path)
    assert str(path) in str(caught.value)
    assert path.read_text() == "[auth\nsubscription_tier = 'max'\n"


def test_a_corrupt_file_is_an_error_naming_the_file_never_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[auth]\nsubscription_tier = \n")
    with pytest.raises(ConfigError) as caught:
        AuthStrategy.load(path)
    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("body", "key", "shown"),
    [
        ("subscription_tier = 'platinum'", "auth.subscription_tier", "'platinum'"),
        ("default_mode = 'sometimes'", "auth.default_mode", "'sometimes'"),
        ("small_module_threshold = -5", "auth.small_module_threshold", "-5"),
        ("medium_module_threshold = -1", "auth.medium_module_threshold", "-1"),
        (
            "small_module_threshold = 900\nmedium_module_threshold = 400",
            "auth.medium_module_threshold",
            "400",
        ),
        ("small_module_threshold = '500'", "auth.small_module_threshold", "'500'"),
        ("small_module_threshold = 2.5", "auth.small_module_threshold", "2.5"),
        ("medium_module_threshold = true", "auth.medium_module_threshold", "True"),
        ("loc_to_tokens_multiplier = 0", "auth.loc_to_tokens_multiplier", "0"),
        ("loc_to_tokens_multiplier = 'four'", "auth.loc_to_tokens_multiplier", "'four'"),
        ("setup_completed = 'yes'", "auth.setup_completed", "'yes'"),
        ("prefer_subscription = 1", "auth.prefer_subscription", "1"),
        ("subscription_tier = 3", "auth.subscription_tier", "3"),
        ("estimate_model = 4", "auth.estimate_model", "4"),
    ],
)
def test_invalid_values_name_the_file_key_and_value(
    tmp_path: Path, body: str, key: str, shown: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[auth]\n{body}\n")
    with pytest.raises(ConfigError) as caught:
        AuthStrategy.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert key in message
    assert shown in message
    assert "attune auth reset" in (caught.value.hint or "")


def test_auth_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("auth = 'max'\n")
    with pytest.raises(ConfigError, match="auth: must be a table"):
        AuthStrategy.load(path)


def test_reset_removes_the_auth_settings_and_keeps_everything_else(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "# mine\n[auth]\n# my plan notes\nsubscription_tier = 'max'\n\n"
        "[auth.metadata]\nimported_from = 'x'\n\n"
        "# how I route\n[routing]\nwindow_days = 7\n"
    )
    assert reset_strategy(path) is True
    assert read_toml(path) == {"auth": {}, "routing": {"window_days": 7}}
    text = path.read_text()
    for comment in ("# mine", "# my plan notes", "# how I route"):
        assert comment in text
    assert text.index("# how I route") < text.index("[routing]")
    assert reset_strategy(path) is False
    assert AuthStrategy.load(path).setup_completed is False


def test_new_keys_go_after_the_settings_not_after_the_next_tables_comment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[auth]\nsubscription_tier = 'pro'\n\n# how I route\n[routing]\nwindow_days = 7\n"
    )
    AuthStrategy(subscription_tier="max", setup_completed=True).save(path)
    text = path.read_text()
    assert text.index("prefer_subscription") < text.index("# how I route")
    assert "\n\n# how I route\n[routing]\n" in text


def test_reset_then_setup_again_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    AuthStrategy(subscription_tier="max", setup_completed=True).save(path)
    reset_strategy(path)
    AuthStrategy(subscription_tier="enterprise", setup_completed=True).save(path)
    assert AuthStrategy.load(path).subscription_tier is SubscriptionTier.ENTERPRISE


# Legacy import


def write_legacy(data: object) -> Path:
    path = legacy_strategy_file(resolve_paths())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_the_older_tools_json_imports_as_a_strategy() -> None:
    path = write_legacy(
        {
            "subscription_tier": "max",
            "default_mode": "auto",
            "small_module_threshold": 400,
            "medium_module_threshold": 2500,
            "loc_to_tokens_multiplier": 4.0,
            "setup_completed": True,
            "prefer_subscription": False,
            "cost_optimization": True,
            "metadata": {"source": "wizard", "nested": {"dropped": True}},
        }
    )
    strategy = load_legacy(resolve_paths())
    assert strategy is not None
    assert strategy.subscription_tier is SubscriptionTier.MAX
    assert strategy.small_module_threshold == 400
    assert strategy.medium_module_threshold == 2500
    assert strategy.prefer_subscription is False
    # Set up only once the person confirms the import.
    assert strategy.setup_completed is False
    assert strategy.metadata == {"source": "wizard", "imported_from": str(path)}


def test_legacy_values_in_upper_case_are_accepted() -> None:
    write_legacy({"subscription_tier": "ENTERPRISE", "default_mode": "API"})
    strategy = load_legacy(resolve_paths())
    assert strategy is not None
    assert strategy.subscription_tier is SubscriptionTier.ENTERPRISE
    assert strategy.default_mode is AuthMode.API


def test_no_legacy_file_means_nothing_to_import() -> None:
    assert load_legacy(resolve_paths()) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"subscription_tier": "gold"}), "subscription_tier"),
    ],
)
def test_a_broken_legacy_file_is_an_error_naming_it(content: str, expected: str) -> None:
    path = write_legacy(content)
    with pytest.raises(ConfigError) as caught:
        load_legacy(resolve_paths())
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_an_imported_strategy_saves_with_its_origin(tmp_path: Path) -> None:
    write_legacy({"subscription_tier": "max", "default_mode": "auto"})
    strategy = load_legacy(resolve_paths())
    assert strategy is not None
    path = tmp_path / "config.toml"
    strategy.save(path)
    assert read_toml(path)["auth"]["metadata"]["imported_from"].endswith("auth_strategy.json")


# Recommendation over real files


def write_python(path: Path, lines: int) -> Path:
    body = "".join(f"value_{i} = {i}\n" for i in range(lines))
    path.write_text("# a header comment\n\n" + body + "\n   # trailing comment\n")
    return path


def test_a_3000_line_file_is_large_and_goes_to_the_api_for_a_max_subscriber(
    tmp_path: Path,
) -> None:
    source = write_python(tmp_path / "big.py", 3000)
    result = recommend(source, AuthStrategy(subscription_tier="max"), REGISTRY)
    assert result.count.lines == 3000
    assert result.size_category is ModuleSize.LARGE
    assert result.recommended_mode is AuthMode.API
    document = result.to_json()
    assert document["estimated_tokens"] == 12_000
    assert document["monetary_cost_usd"] > 0
    assert document["fits_in_context"] is True


def test_a_folder_sums_its_source_files(tmp_path: Path) -> None:
    write_python(tmp_path / "a.py", 300)
    (tmp_path / "pkg").mkdir()
    write_python(tmp_path / "pkg" / "b.py", 250)
    (tmp_path / "node_modules").mkdir()
    write_python(tmp_path / "node_modules" / "dep.js", 9999)
    (tmp_path / "notes.txt").write_text("not source\n" * 100)
    result = recommend(tmp_path, AuthStrategy(subscription_tier="max"), REGISTRY)
    assert (result.count.lines, result.count.files) == (550, 2)
    assert result.size_category is ModuleSize.MEDIUM
    assert result.recommended_mode is AuthMode.SUBSCRIPTION
    assert result.to_json()["monetary_cost_usd"] == 0.0


def test_a_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        recommend(tmp_path / "nope.py", AuthStrategy(), REGISTRY)


def test_an_unreadable_file_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_python(tmp_path / "locked.py", 3)
    if os.geteuid() != 0:
        source.chmod(0)
    else:  # root reads anything: simulate what a user without access sees

        def denied(self: Path) -> bytes:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(InputFileError, match="permission denied"):
        recommend(source, AuthStrategy(), REGISTRY)

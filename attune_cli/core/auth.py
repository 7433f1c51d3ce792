"""The auth strategy: which plan a person has, and when a module goes to it rather than the API.

A Claude subscription (Pro, Max, Enterprise) has no per-token charge but spends a usage quota; the
API bills per token. ``AuthStrategy`` decides per module, by its size in lines of code:

- ``default_mode`` other than ``auto`` is respected as it is;
- ``pro`` and ``api_only`` subscribers get ``api`` (a Pro quota runs out fast; api_only has none);
- otherwise a small module (< ``small_module_threshold`` lines) goes to the subscription, a
  medium one (< ``medium_module_threshold``) too when ``prefer_subscription``, a large one to the
  API.

The strategy lives in the ``[auth]`` table of ``config.toml``::

    [auth]
    subscription_tier = "max"         # free | pro | max | enterprise | api_only
    default_mode = "auto"             # subscription | api | auto
    setup_completed = true
    small_module_threshold = 500      # lines of code
    medium_module_threshold = 2000
    loc_to_tokens_multiplier = 4.0    # estimated tokens per line of code
    prefer_subscription = true        # medium modules go to the subscription
    estimate_model = "claude-sonnet-4-5"   # optional: the model cost estimates are priced on
    api_fallback = false              # may a subscription call go on to the pay-per-token API

The mode acts on every call (``attune_cli.core.billing``): ``subscription`` sends Anthropic
models through Claude Code (``claude -p``), ``api`` through keys, ``auto`` by size.

Estimates (tokens, price, whether a module fits the context window) live in
``attune_cli.core.estimate``, which reads a strategy and the model registry; this module knows
nothing of prices.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from attune_cli.core.errors import ConfigError
from attune_cli.core.plans import AuthMode, ModuleSize, SubscriptionTier

if TYPE_CHECKING:
    from attune_cli.core.paths import Paths
    from attune_cli.core.registry import Registry

AUTH_TABLE = "auth"
LEGACY_FILE = "auth_strategy.json"


@dataclass(frozen=True)
class SizeRoute:
    """What modules of one size category get under a strategy (for ``auth status``)."""

    size: ModuleSize
    lines: str
    mode: AuthMode


@dataclass(frozen=True)
class AuthStrategy:
    """A person's plan and how modules are routed between it and the API.

    Build one from ``config.toml`` with ``AuthStrategy.load()``; change it with
    ``dataclasses.replace`` and write it back with ``save()``. Field names are those of the
    older attune tool, so its ``auth_strategy.json`` imports as it is.

    Raises:
        ValueError: a threshold is negative or the medium one is below the small one, or the
            multiplier is not positive.
    """

    subscription_tier: SubscriptionTier = SubscriptionTier.PRO
    default_mode: AuthMode = AuthMode.AUTO
    small_module_threshold: int = 500
    medium_module_threshold: int = 2000
    loc_to_tokens_multiplier: float = 4.0
    setup_completed: bool = False
    prefer_subscription: bool = True
    cost_optimization: bool = True
    estimate_model: str | None = None
    api_fallback: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Where the strategy was read from, so later errors can name the file.
    source: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Accept plain strings from Python callers ("max"), as the config parser does.
        object.__setattr__(self, "subscription_tier", SubscriptionTier(self.subscription_tier))
        object.__setattr__(self, "default_mode", AuthMode(self.default_mode))
        if self.small_module_threshold < 0:
            raise ValueError("small_module_threshold must not be negative")
        if self.medium_module_threshold < self.small_module_threshold:
            raise ValueError("medium_module_threshold must not be below small_module_threshold")
        if not self.loc_to_tokens_multiplier > 0:
            raise ValueError("loc_to_tokens_multiplier must be positive")

    # Routing

    def size_category(self, module_lines: int) -> ModuleSize:
        """The size category of a module of ``module_lines`` lines of code."""
        if module_lines < self.small_module_threshold:
            return ModuleSize.SMALL
        if module_lines < self.medium_module_threshold:
            return ModuleSize.MEDIUM
        return ModuleSize.LARGE

    def get_recommended_mode(self, module_lines: int) -> AuthMode:
        """The mode a module of ``module_lines`` lines should use.

        Args:
            module_lines: lines of code (non-blank, non-comment) of the module.

        Returns:
            ``subscription`` or ``api``; ``default_mode`` itself when it is not ``auto``.
        """
        if self.default_mode is not AuthMode.AUTO:
            return self.default_mode
        if self.subscription_tier in (SubscriptionTier.PRO, SubscriptionTier.API_ONLY):
            return AuthMode.API
        size = self.size_category(module_lines)
        if size is ModuleSize.SMALL:
            return AuthMode.SUBSCRIPTION
        if size is ModuleSize.MEDIUM:
            return AuthMode.SUBSCRIPTION if self.prefer_subscription else AuthMode.API
        return AuthMode.API

    def size_routes(self) -> tuple[SizeRoute, ...]:
        """What small, medium and large modules get, with their line ranges."""
        small, medium = self.small_module_threshold, self.medium_module_threshold
        samples = (
            (ModuleSize.SMALL, f"< {small:,}", max(small - 1, 0)),
            (ModuleSize.MEDIUM, f"{small:,} – {medium - 1:,}", small),
            (ModuleSize.LARGE, f"≥ {medium:,}", medium),
        )
        return tuple(
            SizeRoute(size, lines, self.get_recommended_mode(sample))
            for size, lines, sample in samples
            # Equal thresholds leave no medium size at all.
            if not (size is ModuleSize.MEDIUM and small == medium)
        )

    # Estimates

    def estimate_tokens(self, module_lines: int) -> int:
        """Estimated tokens of a module: lines × ``loc_to_tokens_multiplier``, rounded up."""
        return math.ceil(module_lines * self.loc_to_tokens_multiplier)

    # Persistence

    def to_dict(self) -> dict[str, Any]:
        """The strategy as plain values, keys in the order they are written to ``[auth]``."""
        data: dict[str, Any] = {
            "subscription_tier": self.subscription_tier.value,
            "default_mode": self.default_mode.value,
            "setup_completed": self.setup_completed,
            "small_module_threshold": self.small_module_threshold,
            "medium_module_threshold": self.medium_module_threshold,
            "loc_to_tokens_multiplier": self.loc_to_tokens_multiplier,
            "prefer_subscription": self.prefer_subscription,
        }
        # ``cost_optimization`` (from the older tool) changes nothing, so it is no longer
        # written; a file that has it keeps it, and reading it still works.
        if self.estimate_model is not None:
            data["estimate_model"] = self.estimate_model
        if self.api_fallback:
            data["api_fallback"] = True
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        return data

    @classmethod
    def from_config(cls, config: Mapping[str, Any], path: Path) -> AuthStrategy:
        """The strategy in a parsed ``config.toml`` (defaults when it has no ``[auth]``).

        Raises:
            ConfigError: ``auth`` is not a table, or holds an invalid value.
        """
        section = config.get(AUTH_TABLE, {})
        try:
            if not isinstance(section, dict):
                raise ConfigError(path, "must be a table", key=AUTH_TABLE, value=section)
            return _parse(section, path, AUTH_TABLE)
        except ConfigError as exc:
            exc.hint = exc.hint or f"fix it in {path}, or run `attune auth reset` to start over"
            raise

    @classmethod
    def load(cls, path: Path | None = None) -> AuthStrategy:
        """Read the strategy from ``config.toml``.

        Args:
            path: the config file; this process's ``config.toml`` when None.

        Returns:
            The strategy; defaults with ``setup_completed=False`` when the file or its
            ``[auth]`` table does not exist.

        Raises:
            ConfigError: the file is not valid TOML or holds an invalid value. A broken file is
                reported, never replaced by defaults.
        """
        from attune_cli.core.config import read_toml

        config_file = path if path is not None else _default_config_file()
        return cls.from_config(read_toml(config_file), config_file)

    def save(self, path: Path | None = None) -> None:
        """Write the strategy to the ``[auth]`` table of ``config.toml``.

        Only ``[auth]`` keys that changed are rewritten: the user's comments, key order, other
        tables and unknown keys survive. The write is locked and atomic.

        Args:
            path: the config file; this process's ``config.toml`` when None.

        Raises:
            ConfigError: the file is not valid TOML, or ``auth`` in it is not a table.
        """
        from attune_cli.core.config import update_toml

        config_file = path if path is not None else _default_config_file()
        values = self.to_dict()

        def change(document: Any) -> None:
            section = _auth_table(document, config_file, create=True)
            with _trailing_comments_kept(section):
                for key, value in values.items():
                    if key == "metadata":
                        _merge_metadata(section, value)
                    elif section.get(key) != value or type(section.get(key)) is not type(value):
                        section[key] = value
                if "estimate_model" not in values and "estimate_model" in section:
                    del section["estimate_model"]
                if not self.api_fallback and section.get("api_fallback") is True:
                    section["api_fallback"] = False

        update_toml(config_file, change)


def reset_strategy(path: Path) -> bool:
    """Remove every setting from the ``[auth]`` table of ``path``.

    The table's header and the person's own comment lines stay (a comment just above the next
    table belongs, to tomlkit, to the end of this one); every other table is left as it is.

    Returns:
        Whether there were settings to remove.

    Raises:
        ConfigError: the file is not valid TOML, or ``auth`` in it is not a table.
    """
    from attune_cli.core.config import read_toml, update_toml

    if not read_toml(path).get(AUTH_TABLE):
        return False

    def change(document: Any) -> None:
        section = _auth_table(document, path, create=False)
        if section is None:
            return
        kept = _comments_after_last_subtable(section)
        for key in list(section):
            del section[key]
        for item in kept:
            section.add(item)

    update_toml(path, change)
    return True


def legacy_strategy_file(paths: Paths) -> Path:
    """Where the older attune tool kept its strategy (``~/.attune/auth_strategy.json``)."""
    return paths.legacy_dir / LEGACY_FILE


def load_legacy(paths: Paths) -> AuthStrategy | None:
    """Read the older attune tool's ``auth_strategy.json``, for import.

    The older tool wrote ``setup_completed: true`` on first use whether or not anyone set it
    up, so the imported strategy is marked set up only when the person confirms it.

    Returns:
        The strategy it held (``setup_completed=False``), or None when there is no such file.

    Raises:
        ConfigError: the file is unreadable, not JSON, or holds an invalid value.
    """
    path = legacy_strategy_file(paths)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot be read: {exc}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "must hold a JSON object")
    # The older tool wrote enum values; be lenient about their case.
    for key in ("subscription_tier", "default_mode"):
        if isinstance(data.get(key), str):
            data[key] = data[key].strip().lower()
    metadata = {
        key: value
        for key, value in (data.get("metadata") or {}).items()
        if isinstance(value, str | int | float | bool)
    }
    data = {
        **data,
        "setup_completed": False,
        "metadata": {**metadata, "imported_from": str(path)},
    }
    return _parse(data, path, "")


@dataclass(frozen=True)
class ProviderStatus:
    """A provider as ``auth status`` shows it: where its key comes from, never the key."""

    name: str
    key_env: str | None
    key_source: Literal["env", "stored"] | None
    key_hint: str | None
    has_stored_key: bool
    base_url: str | None

    def to_json(self) -> dict[str, Any]:
        """The ``providers.NAME`` object of ``auth status --json``."""
        return {
            "key_source": self.key_source,
            "key_hint": self.key_hint,
            "base_url": self.base_url,
            "key_env": self.key_env,
            "has_stored_key": self.has_stored_key,
        }


@dataclass(frozen=True)
class AuthStatus:
    """Everything ``auth status`` reports."""

    strategy: AuthStrategy
    config_file: Path
    credentials_file: Path
    providers: tuple[ProviderStatus, ...]

    def to_json(self) -> dict[str, Any]:
        """The document of ``auth status --json`` (keys as in DESIGN.md)."""
        strategy = self.strategy
        return {
            "subscription_tier": strategy.subscription_tier.value,
            "default_mode": strategy.default_mode.value,
            "setup_completed": strategy.setup_completed,
            "small_module_threshold": strategy.small_module_threshold,
            "medium_module_threshold": strategy.medium_module_threshold,
            "loc_to_tokens_multiplier": strategy.loc_to_tokens_multiplier,
            "prefer_subscription": strategy.prefer_subscription,
            "size_routes": {route.size.value: route.mode.value for route in strategy.size_routes()},
            "api_fallback": strategy.api_fallback,
            # Which commands the mode changes.
            "mode_applies_to": ["ask", "serve", "auth recommend"],
            "config_file": str(self.config_file),
            "credentials_file": str(self.credentials_file),
            "providers": {p.name: p.to_json() for p in self.providers},
        }


def auth_status(
    strategy: AuthStrategy,
    registry: Registry,
    paths: Paths,
    environ: Mapping[str, str] | None = None,
) -> AuthStatus:
    """Gather the strategy and each provider's key source, hint and base URL.

    Providers are the registry's, then any other provider with a stored key. A base URL set in
    the provider's environment variable (``OPENAI_BASE_URL`` …) wins over the configured one.

    Raises:
        PermissionsError: ``credentials.toml`` is readable by others.
        ConfigError: ``credentials.toml`` is not valid TOML.
    """
    import os

    from attune_cli.core.credentials import resolve_key, stored_providers
    from attune_cli.core.registry import Provider

    environment = os.environ if environ is None else environ
    stored = stored_providers(paths)
    providers = []
    for provider in registry.providers.values():
        key = resolve_key(provider, paths, environment)
        base_url_override = environment.get(provider.base_url_env or "", "").strip()
        providers.append(
            ProviderStatus(
                name=provider.name,
                key_env=provider.key_env,
                key_source=key.source if key else None,
                key_hint=key.hint if key else None,
                has_stored_key=provider.name in stored,
                base_url=(base_url_override or provider.base_url).rstrip("/"),
            )
        )
    for name in stored:
        if name not in registry.providers:
            # A key kept for a provider since removed from config.toml: still worth showing.
            orphan = resolve_key(Provider(name, api="", base_url="", key_env=None), paths, {})
            providers.append(
                ProviderStatus(
                    name=name,
                    key_env=None,
                    key_source=orphan.source if orphan else None,
                    key_hint=orphan.hint if orphan else None,
                    has_stored_key=True,
                    base_url=None,
                )
            )
    return AuthStatus(strategy, paths.config_file, paths.credentials_file, tuple(providers))


def save_setup(
    paths: Paths, strategy: AuthStrategy, provider: str | None = None, key: str | None = None
) -> None:
    """Persist the outcome of ``auth setup``: the key first (the likelier to be refused), then
    the strategy, so a refused key leaves ``config.toml`` untouched.

    Raises:
        PermissionsError: ``credentials.toml`` is readable by others.
        ConfigError: ``config.toml`` or ``credentials.toml`` is not valid TOML.
        UsageError: the key is empty or malformed.
    """
    if provider is not None and key is not None:
        from attune_cli.core.credentials import store_key

        store_key(paths, provider, key)
    strategy.save(paths.config_file)


def _parse(data: Mapping[str, Any], path: Path, prefix: str) -> AuthStrategy:
    def dotted(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    def enum_value(key: str, kind: type[SubscriptionTier] | type[AuthMode], default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        try:
            return kind(value)
        except (ValueError, TypeError):
            allowed = " | ".join(member.value for member in kind)
            raise ConfigError(
                path, f"must be one of {allowed}", key=dotted(key), value=value
            ) from None

    def boolean(key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(path, "must be true or false", key=dotted(key), value=value)
        return value

    def whole(key: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, "must be a whole number of lines", key=dotted(key), value=value)
        if value < 0:
            raise ConfigError(path, "must not be negative", key=dotted(key), value=value)
        return value

    defaults = AuthStrategy()
    tier = enum_value("subscription_tier", SubscriptionTier, defaults.subscription_tier)
    mode = enum_value("default_mode", AuthMode, defaults.default_mode)
    small = whole("small_module_threshold", defaults.small_module_threshold)
    medium = whole("medium_module_threshold", defaults.medium_module_threshold)
    if medium < small:
        raise ConfigError(
            path,
            f"must not be below {dotted('small_module_threshold')} ({small})",
            key=dotted("medium_module_threshold"),
            value=medium,
        )
    multiplier = data.get("loc_to_tokens_multiplier", defaults.loc_to_tokens_multiplier)
    if (
        isinstance(multiplier, bool)
        or not isinstance(multiplier, int | float)
        or not math.isfinite(multiplier)
        or multiplier <= 0
    ):
        raise ConfigError(
            path,
            "must be a positive number of tokens per line",
            key=dotted("loc_to_tokens_multiplier"),
            value=multiplier,
        )
    estimate_model = data.get("estimate_model")
    if estimate_model is not None and (not isinstance(estimate_model, str) or not estimate_model):
        raise ConfigError(
            path, "must be a model id", key=dotted("estimate_model"), value=estimate_model
        )
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConfigError(path, "must be a table", key=dotted("metadata"), value=metadata)
    return AuthStrategy(
        subscription_tier=tier,
        default_mode=mode,
        small_module_threshold=small,
        medium_module_threshold=medium,
        loc_to_tokens_multiplier=float(multiplier),
        setup_completed=boolean("setup_completed", False),
        prefer_subscription=boolean("prefer_subscription", defaults.prefer_subscription),
        cost_optimization=boolean("cost_optimization", defaults.cost_optimization),
        estimate_model=estimate_model,
        api_fallback=boolean("api_fallback", False),
        metadata=dict(metadata),
        source=path,
    )


def _auth_table(document: Any, path: Path, *, create: bool) -> Any:
    import tomlkit

    if AUTH_TABLE not in document:
        if not create:
            return None
        document[AUTH_TABLE] = tomlkit.table()
    section = document[AUTH_TABLE]
    if not isinstance(section, dict):
        raise ConfigError(path, "must be a table", key=AUTH_TABLE, value=section)
    return section


@contextlib.contextmanager
def _trailing_comments_kept(section: Any) -> Iterator[None]:
    """New keys go after the last setting, not after the comments that end the table.

    tomlkit appends a new key at the very end of a table's body, which puts it below a comment
    the person wrote above the next table, and drops the blank line before that table.
    """
    from tomlkit.items import Comment, Whitespace

    body = section.value.body
    trailing: list[Any] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Comment | Whitespace):
        trailing.insert(0, body.pop()[1])
    try:
        yield
    finally:
        for item in trailing:
            section.add(item)


def _comments_after_last_subtable(section: Any) -> list[Any]:
    """Comments and blank lines that end the last sub-table (``[auth.metadata]``) of a table.

    Deleting that sub-table would delete them, and they usually introduce the next table.
    """
    from tomlkit.items import Comment, Table, Whitespace

    last = next((item for key, item in reversed(section.value.body) if key is not None), None)
    if not isinstance(last, Table):
        return []
    kept: list[Any] = []
    for key, item in reversed(last.value.body):
        if key is not None or not isinstance(item, Comment | Whitespace):
            break
        kept.insert(0, item)
    return kept + _comments_after_last_subtable(last)


def _merge_metadata(section: Any, metadata: dict[str, Any]) -> None:
    import tomlkit

    if "metadata" not in section or not isinstance(section["metadata"], dict):
        section["metadata"] = tomlkit.table()
    target = section["metadata"]
    for key, value in metadata.items():
        if target.get(key) != value:
            target[key] = value


def _default_config_file() -> Path:
    from attune_cli.core.paths import resolve_paths

    return resolve_paths().config_file

"""One object holding what a command needs: where files are, the parsed config, the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

from attune_cli.core.config import read_toml
from attune_cli.core.paths import Paths, resolve_paths, tighten_existing_dirs
from attune_cli.core.registry import Registry, load_registry

S = TypeVar("S", covariant=True)


class FromConfig(Protocol[S]):
    """A settings class read from the parsed ``config.toml`` (``RoutingSettings`` …)."""

    def from_config(self, config: Any, path: Path, /) -> S: ...


@dataclass
class Workspace:
    """The paths, ``config.toml`` and model registry of this process.

    Build it with ``Workspace.load()``; the config file is parsed once, the registry on first use.
    """

    paths: Paths
    config: dict[str, Any] = field(default_factory=dict)
    _settings: dict[object, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def load(cls, paths: Paths | None = None) -> Workspace:
        """Resolve the paths and parse ``config.toml``.

        Raises:
            ConfigError: ``config.toml`` exists but cannot be parsed.
        """
        resolved = paths or resolve_paths()
        tighten_existing_dirs(resolved)
        config = read_toml(resolved.config_file)
        _check_names(config, resolved.config_file)
        if config:
            from attune_cli.core.config_keys import report_unknown_keys

            report_unknown_keys(config, resolved.config_file)
        return cls(paths=resolved, config=config)

    @cached_property
    def registry(self) -> Registry:
        """The model registry: built-ins merged with ``[models]`` and ``[providers]``."""
        return load_registry(self.config, self.paths.config_file)

    def settings(self, kind: FromConfig[S]) -> S:
        """``kind.from_config(config, config_file)``, read once for this workspace.

        For what is read on every call of a long-lived process (the gateway reads its
        ``[auth]``, ``[routing]`` and ``[budgets]`` on each request); ``config`` is never
        changed once loaded, so neither is what was read from it. An invalid table raises
        every time, as ``from_config`` does.

        Raises:
            ConfigError: the table ``kind`` reads is invalid.
        """
        try:
            return self._settings[kind]  # type: ignore[no-any-return]
        except KeyError:
            pass
        value = kind.from_config(self.config, self.paths.config_file)
        self._settings[kind] = value
        return value


def _check_names(config: dict[str, Any], path: Path) -> None:
    """Refuse provider, model and stage names in ``config.toml`` that a terminal would obey.

    Raises:
        ConfigError: a name holds a control, separator or bidirectional character (the key
            is shown escaped).
    """
    routing = config.get("routing")
    tables = {
        "providers": config.get("providers"),
        "models": config.get("models"),
        "routing.stages": routing.get("stages") if isinstance(routing, dict) else None,
    }
    for prefix, entries in tables.items():
        if not isinstance(entries, dict):
            continue
        for name in entries:
            if str(name).isprintable():
                continue
            from attune_cli.core.errors import ConfigError
            from attune_cli.core.safe_text import unsafe_characters, visible

            if unsafe_characters(str(name)):
                raise ConfigError(
                    path,
                    "names must not contain control or bidirectional characters",
                    key=visible(f'{prefix}."{name}"'),
                    hint="rename it in the file",
                )

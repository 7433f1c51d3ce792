"""One object holding what a command needs: where files are, the parsed config, the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from attune_cli.core.config import read_toml
from attune_cli.core.paths import Paths, resolve_paths
from attune_cli.core.registry import Registry, load_registry


@dataclass
class Workspace:
    """The paths, ``config.toml`` and model registry of this process.

    Build it with ``Workspace.load()``; the config file is parsed once, the registry on first use.
    """

    paths: Paths
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: Paths | None = None) -> Workspace:
        """Resolve the paths and parse ``config.toml``.

        Raises:
            ConfigError: ``config.toml`` exists but cannot be parsed.
        """
        resolved = paths or resolve_paths()
        return cls(paths=resolved, config=read_toml(resolved.config_file))

    @cached_property
    def registry(self) -> Registry:
        """The model registry: built-ins merged with ``[models]`` and ``[providers]``."""
        return load_registry(self.config, self.paths.config_file)

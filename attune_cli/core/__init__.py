"""attune's pure core: no terminal, no prompts, no Typer, Rich or questionary imports."""

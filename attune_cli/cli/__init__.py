"""attune's terminal shell: parse, call core, render. No business logic lives here."""

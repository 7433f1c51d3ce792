"""Many processes opening a brand-new telemetry.db at the same moment all succeed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPEN_AND_WRITE = """
import sys, time
from pathlib import Path
from attune_cli.core.telemetry import db
start_at = float(sys.argv[2])
while time.time() < start_at:
    pass
conn = db.connect(Path(sys.argv[1]))
conn.execute("INSERT INTO labels(kind, value) VALUES ('stage', ?)", (sys.argv[3],))
conn.close()
"""


def test_concurrent_first_opens_lose_nothing(tmp_path: Path) -> None:
    import time

    for round_number in range(3):
        path = tmp_path / f"round{round_number}" / "telemetry.db"
        start_at = time.time() + 0.6
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_WRITE, str(path), str(start_at), f"s{i}"],
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(6)
        ]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        from attune_cli.core.telemetry import db

        conn = db.connect(path)
        count = conn.execute("SELECT count(*) FROM labels").fetchone()[0]
        conn.close()
        assert count == 6

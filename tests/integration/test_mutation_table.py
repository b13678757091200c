"""Issue 14's mutation table stays true: `scripts/mutants` puts each small deliberate bug into a copy of the
tree and the targeted tests must catch every one of them.

Run here so that a change which moves the code a mutant patches (its pattern no longer found exactly once),
or which makes a test stop catching its bug, fails the suite instead of rotting unseen: the script was last
found with three rows lost that way (an arbiter sweep made the TTL check's mutant harmless, a second
`popitem` made a pattern ambiguous, and a USD-M bridge rule left no case at `U == lastUpdateId + 1`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_mutant_of_the_table_is_caught() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mutants"), "-x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    rows = table[2:]
    assert len(rows) >= 10 and all(row.endswith("| CAUGHT |") for row in rows), "\n".join(table)

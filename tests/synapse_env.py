"""A fresh Python environment with matrix-synapse and nothing else, as a Synapse host has it:
for the tests that install the modules' package there (test_synapse_install) and run the
admin guide (test_admin_guide). Built once per test session from pip's cache (10 s quiet, a
minute and more under load), from the system's Python where there is one (a service user
cannot run one under /root, as a pyenv is), in a folder every user may enter, since the guide
runs Synapse as a user of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
SYNAPSE = f"matrix-synapse=={version('matrix-synapse')}"


def pip(python: Path, *args: str) -> str:
    """The environment's own pip."""
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def distributions(python: Path) -> set[str]:
    listed = json.loads(pip(python, "list", "--format", "json"))
    return {str(d["name"]).lower().replace("_", "-") for d in listed}


@contextmanager
def synapse_only_environment() -> Iterator[tuple[Path, set[str]]]:
    """The environment's interpreter and the distributions in it (matrix-synapse, this
    environment's version, its dependencies, pip); removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pb-synapse-env-"))
    python = root / "env" / "bin" / "python"
    try:
        root.chmod(0o755)
        umask = os.umask(0o022)  # files every user may read, as a root's install makes them
        try:
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(root / "env")], check=True)
            pip(python, "install", "--quiet", "--no-compile", SYNAPSE)
        finally:
            os.umask(umask)
        yield python, distributions(python)
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""The core's own suite, run again with a third-party plugin installed beside the bundled ones.

The plugin is built at test time from ``patcode plugins new zeta`` (a real
package: pyproject, entry point, settings, hooks), installed into a folder of
its own with pip, and put on ``PYTHONPATH`` of a child pytest that runs every
core test. Its key is set in the environment, as a user of it would have it:
the core's tests must clear it, not trip over it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
#: Set in the child run, so that it does not start another one.
CHILD = "PATCODE_FOREIGN_PLUGIN_CHILD"


@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="this is the child run")
def test_the_core_suite_passes_with_a_foreign_plugin_installed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "PATCODE_"))}
    new = subprocess.run(
        [sys.executable, "-m", "patcode_core", "plugins", "new", "zeta", "--dir", str(tmp_path)],
        env={**env, "PATCODE_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=60,
    )
    assert new.returncode == 0, new.stderr
    site = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(tmp_path / "patcode-zeta")],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    child_env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")])),
        "ZETA_API_KEY": "zeta-real-looking-key-0123456789",
        "ZETA_BASE_URL": "http://127.0.0.1:9/v1",
        CHILD: "1",
    }
    listed = subprocess.run([sys.executable, "-m", "patcode_core", "plugins"], env={**child_env, "PATCODE_HOME": str(tmp_path / "home")},
                            capture_output=True, text=True, timeout=60)
    assert "  ✅ zeta — patcode-zeta 0.1.0" in listed.stdout, listed.stdout + listed.stderr
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-x", "-p", "no:cacheprovider",
         "--deselect", "tests/test_real_llama_server.py", "--deselect", "tests/test_gateway_page.py"],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=1200,
    )
    tail = "\n".join(suite.stdout.splitlines()[-30:])
    assert suite.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail

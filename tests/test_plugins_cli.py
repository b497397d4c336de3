"""``patcode plugins`` and ``patcode plugins new NAME``, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakes.evil_plugins import write_plugin


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "PATCODE_"))}
    return subprocess.run(
        [sys.executable, "-m", "patcode_core", *args],
        env={**base, "PATCODE_LANG": "es", "PATCODE_HOME": str(cwd / "home"), **env},
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )


def test_plugins_lists_each_plugin_with_package_version_providers_and_hooks(tmp_path: Path) -> None:
    result = run(["plugins"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Plugins instalados (grupo patcode.providers):"
    at = lines.index("  ✅ openai — patcode-openai 0.1.0")
    assert lines[at + 1 : at + 3] == [
        "     providers: openai",
        "     hooks: provider_available, provider_complete, provider_info, provider_stream",
    ]


def test_a_broken_plugin_is_listed_with_its_reason_and_the_exit_code_says_so(tmp_path: Path) -> None:
    write_plugin(tmp_path / "site", "broken", "patcode_broken_demo", "raise ImportError('no module named acme_sdk')\n")
    result = run(["plugins"], tmp_path, PYTHONPATH=str(tmp_path / "site"))
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "broken" in line)
    assert line.startswith("  ❌ broken — patcode_broken_demo 0.0 — ImportError: no module named acme_sdk")
    assert "✅ openai" in result.stdout and "Traceback" not in result.stderr


def test_plugins_new_writes_a_plugin_whose_test_passes_as_generated(tmp_path: Path) -> None:
    result = run(["plugins", "new", "acme", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr
    root = tmp_path / "patcode-acme"
    assert result.stdout.startswith(f"Plugin creado en {root}.")
    assert 'acme = "patcode_acme:plugin"' in (root / "pyproject.toml").read_text(encoding="utf-8")
    source = (root / "patcode_acme" / "__init__.py").read_text(encoding="utf-8")
    assert "from patcode_core.plugin import" in source and "patcode_core." not in source.replace("patcode_core.plugin", "")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(root / "tests")],
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "ConformanceSuite" in (root / "tests" / "test_acme.py").read_text(encoding="utf-8")  # the kit's suite
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    again = run(["plugins", "new", "acme", "--dir", str(tmp_path)], tmp_path)
    assert again.returncode == 2 and "ya existe" in again.stderr


def test_plugins_new_refuses_a_name_that_cannot_be_a_provider(tmp_path: Path) -> None:
    result = run(["plugins", "new", "Acme-Cloud!", "--dir", str(tmp_path)], tmp_path)
    assert result.returncode == 2
    assert "no sirve como nombre de plugin" in result.stderr and not list(tmp_path.glob("patcode-*"))

"""The layering of DESIGN.md holds, and the linter that holds it would notice a break.

`lint-imports` (import-linter, contracts in pyproject.toml) runs in `make lint` and CI; these
tests prove its contracts bite, by breaking each important one in a copy of the package, and
that the pure `sms` package really loads without Flask.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_sms_package_imports_no_flask_and_no_database() -> None:
    code = (
        "import smsdash.sms.segments, smsdash.sms.body, smsdash.sms.phones, smsdash.sms.smart_encoding, sys; "
        "loaded = [m for m in ('flask', 'sqlalchemy', 'redis', 'rq') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)


def test_the_simulator_starts_without_loading_the_app() -> None:
    code = "import smsdash.simulator.__main__, sys; assert 'flask' not in sys.modules and 'smsdash.models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)


def _lint_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports over a copy of smsdash/ in which `module` gained the import `line`."""
    shutil.copytree(PROJECT_ROOT / "smsdash", tmp_path / "smsdash", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module:
        path = tmp_path / "smsdash" / (module.replace(".", "/") + ".py")
        path.write_text(path.read_text() + f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )


def test_the_contracts_hold_on_the_tree(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, "", "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("sms.segments", "import smsdash.models", "sms is pure"),
        ("sms.body", "import flask", "sms is pure"),
        ("simulator.store", "import smsdash.delivery.status", "The simulator is a stranger"),
        ("delivery.status", "import smsdash.sending.job", "Applying a status never imports sending"),
        ("webhooks.views", "import smsdash.twilio.client", "The webhooks answer fast"),
        ("worker.runner", "import smsdash.sending.queue", "The worker is a leaf"),
        ("twilio.error_codes", "import smsdash.messages.views", "Layers"),
        ("chunks", "import smsdash.delivery.timeline", "Layers"),
    ],
)
def test_a_broken_contract_fails_the_linter(tmp_path: Path, module: str, line: str, contract: str) -> None:
    result = _lint_copy(tmp_path, module, line)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout

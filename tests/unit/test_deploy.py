"""The edge node's systemd unit and install script are what a site installs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DEPLOY = Path(__file__).parents[2] / "edge_node" / "deploy"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "cctv-edge.service").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_runs_hardened_as_its_own_user_writing_only_its_data_dir() -> None:
    unit = unit_settings()
    assert unit["User"] == ["cctv"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/cctv"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ExecStart"][0].endswith("cctv edge")
    assert int(unit["TimeoutStopSec"][0]) >= 30, "time to seal and say goodbye"


def test_the_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    text = (DEPLOY / "cctv-edge.service").read_text()
    # Point ExecStart at a binary that exists here; the rest is verified as is.
    unit = tmp_path / "cctv-edge.service"
    unit.write_text(text.replace("/opt/cctv/venv/bin/cctv edge", "/bin/true"))
    if analyze is not None:
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True,
                                text=True, check=False)
        problems = [line for line in result.stderr.splitlines()
                    if "cctv-edge.service" in line]
        assert problems == [], result.stderr
    assert "ExecStart=/bin/true" in unit.read_text()


def test_the_install_script_is_valid_bash_and_installs_the_unit() -> None:
    script = DEPLOY / "install-edge.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert "cctv-edge.service" in text
    assert "useradd --system" in text
    assert "0640" in text, "the env file holds the broker password"
    assert "net.core.rmem_max = 4194304" in text, "the recorder's socket buffers"

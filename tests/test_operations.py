"""Operations: the systemd unit, the install and offline-bundle scripts (in a temporary root)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "edgeslm.service"


def _unit_with_real_binary(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's edgeslm, so `verify` can resolve it."""
    exe = Path(sys.executable).parent / "edgeslm"
    unit = tmp_path / "edgeslm.service"
    unit.write_text(UNIT.read_text().replace("/opt/edgeslm/venv/bin/edgeslm", str(exe)))
    return unit


def test_unit_has_the_service_contract() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=78",
                 "StateDirectory=edgeslm", "ConfigurationDirectory=edgeslm", "LoadCredential=mqtt_password:",
                 "MemoryMax=", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_and_security_score(tmp_path: Path) -> None:
    unit = _unit_with_real_binary(tmp_path)
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                       check=False)
    problems = [ln for ln in (v.stdout + v.stderr).splitlines() if "edgeslm.service" in ln]
    assert not problems, problems
    s = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                       text=True, timeout=60, check=False)
    m = re.search(r"Overall exposure level for edgeslm.service: ([\d.]+)", s.stdout)
    assert m, s.stdout[-500:]
    assert float(m.group(1)) <= 2.0  # recorded in docs/operations.md


@pytest.mark.slow
def test_offline_bundle_installs_into_a_temporary_root_without_network(tmp_path: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    out = tmp_path / "dist"
    subprocess.run(["bash", str(REPO / "deploy" / "offline-bundle.sh"), "--out", str(out)], check=True, env=env,
                   timeout=900, cwd=REPO)
    [bundle] = list(out.glob("edgeslm-offline-*.tar.gz"))
    with tarfile.open(bundle) as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    [root_dir] = list((tmp_path / "unpacked").iterdir())
    assert (root_dir / "install.sh").is_file() and any((root_dir / "wheels").glob("edgeslm-*.whl"))
    root = tmp_path / "root"
    # --offline installs with pip --no-index: nothing may come from the network.
    env_off = {**env, "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/none"}
    r = subprocess.run(["bash", str(root_dir / "install.sh"), "--offline", "--root", str(root), "--no-user"],
                       capture_output=True, text=True, env=env_off, timeout=900, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "config OK" in r.stdout
    exe = root / "opt" / "edgeslm" / "venv" / "bin" / "edgeslm"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("edgeslm ")
    assert (root / "etc" / "edgeslm" / "edgeslm.toml").is_file()
    assert (root / "etc" / "systemd" / "system" / "edgeslm.service").is_file()
    assert (root / "etc" / "edgeslm" / "mqtt_password").stat().st_mode & 0o777 == 0o600
    # a second run keeps the engineer's edited config
    cfg = root / "etc" / "edgeslm" / "edgeslm.toml"
    cfg.write_text(cfg.read_text().replace('name = "gateway-1"', 'name = "edited"'))
    r2 = subprocess.run(["bash", str(root_dir / "install.sh"), "--offline", "--root", str(root), "--no-user"],
                        capture_output=True, text=True, env=env_off, timeout=900, check=False)
    assert r2.returncode == 0 and "kept existing" in r2.stdout
    assert 'name = "edited"' in cfg.read_text()

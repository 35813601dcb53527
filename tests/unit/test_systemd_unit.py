"""systemd/dlsupervisor.service: the settings issue 3 asks for, consistent with conf/supervisor.ini."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

from dlsupervisor import config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "dlsupervisor.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]


def test_the_unit_is_notify_with_reload_mixed_kill_and_restart():
    unit = service()
    assert unit["Type"] == "notify" and unit["NotifyAccess"] == "main"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["KillMode"] == "mixed"
    assert unit["Restart"] == "on-failure"
    assert "dlsupervisor start -c /etc/dlsupervisor/supervisor.ini" in unit["ExecStart"]
    assert "--daemon" not in unit["ExecStart"]


def test_the_stop_timeout_leaves_room_for_the_drain():
    settings = config.load(str(REPO / "conf" / "supervisor.ini"), environ={})
    assert (
        float(service()["TimeoutStopSec"]) > settings.supervisor.stop_timeout + settings.supervisor.kill_grace
    )


def test_it_runs_as_a_dedicated_user_with_hardening():
    unit = service()
    assert unit["User"] == "dlsupervisor" and unit["Group"] == "dlsupervisor"
    assert unit["NoNewPrivileges"] == "yes" and unit["PrivateTmp"] == "yes"
    assert unit["ProtectSystem"] == "strict"
    settings = config.load(str(REPO / "conf" / "supervisor.ini"), environ={})
    assert settings.supervisor.run_dir in unit["ReadWritePaths"].split()


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # nothing to ask; the settings above are still checked
    text = UNIT.read_text().replace("/opt/dlsupervisor/venv/bin/dlsupervisor", "/bin/true")
    copy = tmp_path / "dlsupervisor.service"
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "dlsupervisor.service" in line]
    assert problems == [], result.stderr

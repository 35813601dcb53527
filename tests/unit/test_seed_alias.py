"""The seed's import path is an alias of dlsupervisor (contract.md §6), and standalone mode reads
its subtype off the handler instead of a [subtype:...] section."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import signal
from pathlib import Path

import pytest

import dlsupervisor
from dlsupervisor import config, model, standalone, task
from dlsupervisor.signals import SignalInbox
from dlsupervisor.supervisor import Master

ALIAS = Path(__file__).resolve().parents[2] / "duyan_download_task"


@pytest.mark.parametrize(
    "module, names, source",
    [
        ("duyan_download_task", ["DownloadTaskBase", "SubTypeInfo"], task),
        ("duyan_download_task", ["DownloadTaskScheduler"], standalone),
        ("duyan_download_task.task", ["DownloadTaskBase", "SubTypeInfo"], task),
        ("duyan_download_task.scheduler", ["DownloadTaskScheduler"], standalone),
        ("duyan_download_task.model", ["DownloadTaskMain", "DownloadItem", "ItemStatus"], model),
        ("duyan_download_task.model", ["TaskStatus"], model),
        ("duyan_download_task.constants", ["ItemStatus", "TaskStatus"], model),
    ],
)
def test_the_seed_names_are_dlsupervisors_own_objects(module, names, source):
    alias = importlib.import_module(module)
    for name in names:
        assert getattr(alias, name) is getattr(source, name), name


def test_the_alias_package_holds_no_logic():
    for path in sorted(ALIAS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            exports = isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"]
            assert isinstance(node, ast.ImportFrom) or docstring or exports, f"{path.name}:{node.lineno}"


def test_the_seed_status_names_keep_their_numbers():
    from duyan_download_task.constants import ItemStatus, TaskStatus

    assert (ItemStatus.FAIL, ItemStatus.READY, ItemStatus.PROCESSING, ItemStatus.VALID) == (-1, 0, 1, 2)
    assert (ItemStatus.EXCEED, TaskStatus.EXCEED, TaskStatus.CANCEL) == (3, 3, 4)


def test_download_task_scheduler_is_public_api_and_takes_the_seeds_arguments():
    assert dlsupervisor.DownloadTaskScheduler is standalone.DownloadTaskScheduler
    scheduler = dlsupervisor.DownloadTaskScheduler("config.ini", "download_task_scheduler", "0 */2 * * * *")
    assert (scheduler.config_path, scheduler.cron) == ("config.ini", "0 */2 * * * *")
    by_seed_keyword = dlsupervisor.DownloadTaskScheduler(config_path="c.ini", log_path="sched")
    assert by_seed_keyword.logger_name == "sched"


class Demo(task.DownloadTaskBase):
    pass


INFO = task.SubTypeInfo(task_name="DemoTask", type=10, sub_type=15, queue_key="demo_task_queue")


def test_a_handler_becomes_its_own_subtype_section():
    sub = standalone.handler_subtype(Demo(INFO, "config.ini", "demo_task", max_job=3))
    assert (sub.name, sub.workers, sub.timeout) == ("DemoTask", 3, 600)
    assert sub.handler == f"{__name__}:Demo"
    assert sub.type is None and sub.sub_type is None, "routing comes from the handler's task_info"


def test_timeout_comes_from_the_keyword_or_a_class_attribute():
    class Quick(Demo):
        timeout = 30

    assert standalone.handler_subtype(Demo(INFO, "c.ini", "d", timeout=5)).timeout == 5
    assert standalone.handler_subtype(Quick(INFO, "c.ini", "d")).timeout == 30
    assert standalone.handler_subtype(Quick(INFO, "c.ini", "d", timeout=0)).timeout == 0


def test_max_job_zero_means_one_worker_as_in_the_seed_and_nonsense_is_refused():
    assert standalone.handler_subtype(Demo(INFO, "c.ini", "d", max_job=0)).workers == 1
    with pytest.raises(ValueError, match="max_job"):
        standalone.handler_subtype(Demo(INFO, "c.ini", "d", max_job=-2))
    with pytest.raises(ValueError, match="timeout"):
        standalone.handler_subtype(Demo(INFO, "c.ini", "d", timeout=-1))


def test_a_bad_config_ends_a_standalone_script_with_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        Demo(INFO, str(tmp_path / "missing.ini"), "d").start()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dlsupervisor: ") and "missing.ini" in err and err.count("\n") == 1


def test_a_master_without_a_scheduler_wants_only_its_workers(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[download_task]\ndbHost=127.0.0.1\ndbName=x\n")
    settings = config.load(str(path), environ={})
    sub = standalone.handler_subtype(Demo(INFO, str(path), "d", max_job=2))
    settings = dataclasses.replace(settings, subtypes=(sub,))
    assert Master(settings, scheduler=False).wanted() == {"DemoTask": 2}
    assert Master(settings).wanted() == {None: 1, "DemoTask": 2}


def test_an_uninstalled_inbox_puts_the_callers_handlers_back():
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGINT, mine)
    try:
        inbox = SignalInbox()
        inbox.install()
        assert signal.getsignal(signal.SIGINT) is not mine
        inbox.uninstall()
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.set_wakeup_fd(-1) == -1
    finally:
        signal.signal(signal.SIGINT, before)

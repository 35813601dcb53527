"""Issue 11: loading a handler leaves the caller's sys.path alone (a business application's
Client loads them too); a handler beside its configuration file still loads.  A daemon's
workers: tests/process/test_handler_imports.py."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlsupervisor import config, handlers
from dlsupervisor.client import Client
from dlsupervisor.errors import HandlerLoadError

HANDLER = """
from dlsupervisor import DownloadTaskBase, SubTypeInfo
{extra}

class Beside(DownloadTaskBase):
    task_info = SubTypeInfo(task_name="Beside", type=10, sub_type=61, queue_key="beside")

    def get_validated_data_params(self, task_item_id, data):
        return {{}}

    def export(self, task_item, data_obj):
        import {sibling}  # a module beside this one, imported only when an export runs

        return {sibling}.URL, None, "beside.txt"
"""


@pytest.fixture
def beside(tmp_path) -> Iterator[tuple[Path, str]]:
    """A config dir holding a handler module (not importable as is) and its sibling."""
    name, sibling = f"beside_{uuid.uuid4().hex[:8]}", f"sibling_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(HANDLER.format(extra="", sibling=sibling))
    (tmp_path / f"{sibling}.py").write_text('URL = "file:///beside"\n')
    yield tmp_path, name
    for module in (name, sibling):
        sys.modules.pop(module, None)


def settings_for(directory: Path, handler: str, db_url: str | None = None) -> config.Settings:
    path = directory / "beside.ini"
    db_url = db_url or f"sqlite:///{directory}/dl.db"
    path.write_text(f"[database]\nurl = {db_url}\n[subtype:beside]\nhandler = {handler}\nworkers = 1\n")
    return config.load(str(path), environ={})


def test_a_handler_beside_its_file_loads_and_sys_path_is_unchanged(beside):
    directory, name = beside
    settings = settings_for(directory, f"{name}:Beside")
    before = list(sys.path)
    cls, info = handlers.load(settings, settings.subtype("beside"))
    assert cls.__name__ == "Beside" and info.sub_type == 61
    assert sys.path == before
    assert handlers.check_all(settings) is None and sys.path == before


def test_a_handler_importable_as_is_leaves_sys_path_unchanged(tmp_path):
    settings = settings_for(tmp_path, "tests.hooks.behaviours:Behaviour")
    before = list(sys.path)
    handlers.load(settings, settings.subtype("beside"))
    assert sys.path == before


def test_a_missing_dependency_of_a_handler_is_its_own_error_and_sys_path_is_unchanged(beside):
    directory, name = beside
    (directory / f"{name}.py").write_text(HANDLER.format(extra="import no_such_dependency_xyz", sibling="os"))
    settings = settings_for(directory, f"{name}:Beside")
    before = list(sys.path)
    with pytest.raises(HandlerLoadError, match=f"cannot import {name}: .*no_such_dependency_xyz"):
        handlers.load(settings, settings.subtype("beside"))
    assert sys.path == before


def test_a_handler_found_nowhere_is_one_error_and_sys_path_is_unchanged(tmp_path):
    settings = settings_for(tmp_path, "nowhere_at_all_xyz.mod:Gone")
    before = list(sys.path)
    with pytest.raises(HandlerLoadError, match="cannot import nowhere_at_all_xyz.mod: ModuleNotFoundError"):
        handlers.load(settings, settings.subtype("beside"))
    assert sys.path == before


def test_a_business_applications_client_leaves_sys_path_unchanged(beside):
    directory, name = beside
    settings = settings_for(directory, f"{name}:Beside")
    from dlsupervisor.store import open_store

    store = open_store(settings.database)
    store.initdb()
    store.close()
    before = list(sys.path)
    with Client(settings.path) as client:
        task_id = client.submit("beside", 7, {"x": 1})
    assert task_id > 0 and sys.path == before

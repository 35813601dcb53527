"""GET /: the dashboard, server-rendered; every value shown goes through html.escape.

Task names and remarks are user data: escaping them keeps a `<script>` in a remark text.
The page reloads itself every REFRESH seconds (a meta refresh: no script of ours either).
"""

from __future__ import annotations

import html
import os
from typing import Any
from urllib.parse import parse_qs

from dlsupervisor import progress, statusfile
from dlsupervisor.model import ItemStatus, TaskStatus
from dlsupervisor.web import http
from dlsupervisor.web.http import Environ, StartResponse

REFRESH = 5
STYLE = (
    "body{font:14px sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
)


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def status_name(kind: type[ItemStatus] | type[TaskStatus], value: Any) -> str:
    try:
        return kind(value).name
    except ValueError:
        return str(value)


def page(app: Any, environ: Environ, start: StartResponse) -> list[bytes]:
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    tasks = app.tasks(query)
    names = app.subtype_names()
    body = [
        f'<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH}">',
        f"<title>dlsupervisor</title><style>{STYLE}</style></head><body><h1>dlsupervisor</h1>",
        filters(query, sorted(set(names.values()))),
        '<table id="tasks"><tr><th>id</th><th>org</th><th>subtype</th><th>name</th><th>status</th>'
        "<th>progress</th><th>items</th><th>remark</th><th>downloads</th></tr>",
        *(task_row(task, names) for task in tasks),
        "</table>",
        children(app.settings.supervisor.run_dir),
        "</body></html>",
    ]
    return http.respond(start, 200, "".join(body), "text/html; charset=utf-8")


def selected(query: dict[str, str], key: str, value: str) -> str:
    return " selected" if query.get(key) == value else ""


def filters(query: dict[str, str], subtypes: list[str]) -> str:
    options = "".join(
        f'<option value="{e(n)}"{" selected" if query.get("subtype") == n else ""}>{e(n)}</option>'
        for n in ["", *subtypes]
    )
    statuses = "".join(
        f'<option value="{s.value}"{selected(query, "status", str(s.value))}>{s.name}</option>'
        for s in TaskStatus
    )
    return (
        '<form id="filters" method="get" action="/">'
        f'org <input name="org" value="{e(query.get("org", ""))}" size="6"> '
        f'subtype <select name="subtype">{options}</select> '
        f'status <select name="status"><option value=""></option>{statuses}</select> '
        '<button type="submit">filter</button></form>'
    )


def task_row(task: dict[str, Any], names: dict[int, str]) -> str:
    items = task["items"]
    finished = sum(1 for i in items if i["status"] not in (ItemStatus.READY, ItemStatus.PROCESSING))
    links = " ".join(
        f'<a href="{e(i["url"])}">{e(i["file_name"] or i["id"])}</a>'
        for i in items
        if i["status"] == ItemStatus.DONE and i["url"]
    )
    remarks = "; ".join(str(i["remark"]) for i in items if i["remark"])
    remark = task["remark"] or remarks
    return (
        f'<tr class="task" data-id="{e(task["id"])}"><td>{e(task["id"])}</td><td>{e(task["org_id"])}</td>'
        f"<td>{e(names.get(task['sub_type'], task['sub_type']))}</td><td>{e(task['task_name'])}</td>"
        f"<td>{e(status_name(TaskStatus, task['status']))}</td>{progress_cell(task['export_progress'])}"
        f'<td class="items">{finished}/{len(items)}</td><td class="remark">{e(remark)}</td>'
        f"<td>{links}</td></tr>"
    )


def progress_cell(shown: dict[str, Any] | None) -> str:
    """The task's export progress as `tasks` shows it (`45%`, `1,200 rows`, `-`), with
    `done / total` rows on hover when the total is known."""
    if shown is None:
        return f'<td class="progress">{e(progress.NONE)}</td>'
    hover = f' title="{shown["done"]:,} / {shown["total"]:,}"' if shown["total"] is not None else ""
    return f'<td class="progress"{hover}>{e(shown["text"])}</td>'


def children(run_dir: str) -> str:
    status = statusfile.read(os.path.join(run_dir, "status.json"))
    if not status:
        return "<h2>children</h2><p>no status file</p>"
    rows = "".join(
        f"<tr><td>{e(c.get('name'))}</td><td>{e(c.get('pid'))}</td><td>{e(c.get('state'))}</td>"
        f"<td>{e(c.get('item') or c.get('split') or '')}</td><td>{e(c.get('restarts'))}</td></tr>"
        for c in status.get("children", [])
    )
    master = status.get("master", {})
    return (
        f"<h2>children of {e(master.get('host'))} (master pid {e(master.get('pid'))})</h2>"
        f'<table id="children"><tr><th>name</th><th>pid</th><th>state</th><th>work</th><th>restarts</th></tr>'
        f"{rows}</table>"
    )


def login_form(start: StartResponse, code: int = 401) -> list[bytes]:
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><title>dlsupervisor: log in</title></head><body>'
        '<form id="login" method="post" action="/login">token <input type="password" name="token"> '
        '<button type="submit">log in</button></form></body></html>'
    )
    return http.respond(start, code, body, "text/html; charset=utf-8")


def login(app: Any, environ: Environ, start: StartResponse) -> list[bytes]:
    """POST /login: the token as a form field; right, a cookie and back to /; wrong, the form again."""
    if environ.get("REQUEST_METHOD") != "POST":
        return login_form(start, 200)
    length = min(int(environ.get("CONTENT_LENGTH") or 0), 4096)
    given = parse_qs(environ["wsgi.input"].read(length).decode(errors="replace")).get("token", [""])[0]
    fake = {"HTTP_AUTHORIZATION": f"Bearer {given}"}
    if not app.authorised(fake):
        return login_form(start, 403)
    cookie = f"{http.COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"
    return http.respond(start, 303, b"", headers=[("Location", "/"), ("Set-Cookie", cookie)])

"""contract.md §8, the dashboard in Debian's Chromium (Playwright): tasks newest first, user
data shown escaped and never run, filters, and the token login."""

from __future__ import annotations

import os

import pytest

from tests.integration.test_web_app import done_item, serving, task_with_progress, web_settings

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="chromium not installed"
)
EVIL = "<script>window.pwned = 1</script>"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


def task_ids(page) -> list[int]:
    return [int(row.get_attribute("data-id")) for row in page.locator("tr.task").all()]


def test_the_dashboard_lists_tasks_newest_first_escaped_and_filtered(sqlite_env, tmp_path, browser):
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url)
    first, _ = done_item(sqlite_env, "7/1/1/a.csv", "a.csv", org_id=7)
    evil, _ = done_item(sqlite_env, "8/2/2/b.csv", "b.csv", org_id=8, remark=EVIL)
    sqlite_env.db.execute("UPDATE download_task_main SET task_name = %s WHERE id = %s", (EVIL, evil))
    with serving(settings) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        assert task_ids(page)[:2] == [evil, first]
        row = page.locator(f'tr.task[data-id="{evil}"]')
        assert EVIL in row.inner_text()  # shown as text
        assert page.evaluate("window.pwned") is None  # and never run
        page.fill("input[name=org]", "7")
        page.click("#filters button")
        page.wait_for_url("**org=7**")
        assert task_ids(page) == [first]
        page.goto(f"http://127.0.0.1:{port}/?status=2&org=8")
        assert task_ids(page) == [evil]


def test_the_dashboard_wants_the_token_and_the_login_form_sets_it(sqlite_env, tmp_path, browser):
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url, token="let-me-in")
    task_id, _ = done_item(sqlite_env, "7/1/1/a.csv", "a.csv")
    with serving(settings) as port:
        page = browser.new_page()
        response = page.goto(f"http://127.0.0.1:{port}/")
        assert response.status == 401 and task_ids(page) == []
        page.fill("input[name=token]", "wrong")
        page.click("#login button")
        assert task_ids(page) == []
        page.fill("input[name=token]", "let-me-in")
        page.click("#login button")
        page.wait_for_selector("tr.task")
        assert task_ids(page) == [task_id]


def test_the_dashboard_shows_each_tasks_export_progress(sqlite_env, tmp_path, browser):
    settings = web_settings(tmp_path / "web.ini", sqlite_env.db_url)
    task_id, _ = task_with_progress(sqlite_env)
    done_id, _ = done_item(sqlite_env, "7/1/1/a.csv", "a.csv")  # never reported: none shown
    with serving(settings) as port:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        cell = page.locator(f'tr.task[data-id="{task_id}"] td.progress')
        assert cell.inner_text() == "70%"  # (40 + 100) of (100 + 100): the requeued item not counted
        assert cell.get_attribute("title") == "140 / 200"
        assert page.locator(f'tr.task[data-id="{task_id}"] td.items').inner_text() == "1/4"
        assert page.locator(f'tr.task[data-id="{done_id}"] td.progress').inner_text() == "-"

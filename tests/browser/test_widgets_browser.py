"""A person's view of the widgets: JupyterLab in a headless Chromium, driven by Playwright.

On an executed smoke run, notebooks 00 (clip browser) and 07 (error explorer) are opened in
JupyterLab. First the saved widget state must show 07's explorer with its figures before anything
runs (the executed notebook stores it). Then each notebook is run and its widgets are clicked
through: machine, split, domain, label and clip in 00; machine, system selection and clip in 07.
The test fails when a pane lacks a figure after an update, when the browser console reports an
error, or when an update takes longer than ``ASD_BROWSER_UPDATE_S`` seconds (3 by default) from
the click until the kernel is idle and every image of the pane is loaded. Every wait is bounded;
JupyterLab and Chromium are stopped whatever happens.

Chromium is Debian's (``apt-get install -y chromium``; ``make browser-test`` installs it when run as
root), never downloaded by Playwright; ``ASD_CHROMIUM`` names another executable.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UPDATE_LIMIT_S = float(os.environ.get("ASD_BROWSER_UPDATE_S", "3.0"))
RUN_ALL_LIMIT_S = 420          # one notebook's "run all" in JupyterLab (smoke: well under a minute unloaded)
QUIET_S = 0.4                  # the kernel has settled when it stays idle this long after its last message
INSTALL_HINT = ("install Debian's Chromium (`apt-get install -y chromium`, or `make browser-test` as root) "
                "or set ASD_CHROMIUM to a Chromium executable")


def chromium_executable() -> str | None:
    """The Chromium to drive: ``ASD_CHROMIUM`` or the first of chromium / chromium-browser on PATH."""
    explicit = os.environ.get("ASD_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _playwright_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("playwright") is None


# checked at collection, before any fixture runs: without a browser nothing (no smoke run) is started
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(_playwright_missing(), reason="Playwright is missing: pip install -r requirements.txt"),
    pytest.mark.skipif(chromium_executable() is None, reason=f"no Chromium found: {INSTALL_HINT}"),
]




def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# JupyterLab settings for a machine without internet: no news feed, no update check (each would be a
# failed request, i.e. a console error that is not the compendium's)
LAB_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings":
                {"fetchNews": "false", "checkForUpdates": False}}


@pytest.fixture(scope="module")
def lab(smoke_run, tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, serving copies of the executed 00 and 07."""
    root = tmp_path_factory.mktemp("lab")
    for stem in ("00_dataset_tour", "08_comparison"):
        shutil.copy(smoke_run.executed(stem), root / f"{stem}.ipynb")
    settings = root / ".lab-settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(root / ".ws"),
               JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log = open(root / "jupyterlab.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly",
         "--ServerApp.terminals_enabled=False", "--allow-root"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"JupyterLab did not start: {(root / 'jupyterlab.log').read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url, token
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop JupyterLab and the kernels it started (its process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_executable(), headless=True,
                                              args=["--no-sandbox", "--disable-gpu"], timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


class LabPage:
    """One notebook open in JupyterLab, with its console errors and the kernel's status changes."""

    def __init__(self, browser, url: str, token: str, notebook: str):
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.page.set_default_timeout(60_000)
        self.errors: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # a workspace of its own, reset: nothing restored from an earlier page (another notebook's tab)
        workspace = "w" + secrets.token_hex(4)
        self.page.goto(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={token}")
        self.page.wait_for_function(
            f"""() => {{ const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                        return w && w.context && w.context.path === {json.dumps(notebook)}
                               && w.sessionContext && w.sessionContext.session
                               && w.sessionContext.session.kernel; }}""", timeout=120_000)
        self.page.evaluate("""async () => {
            const w = window.jupyterapp.shell.currentWidget;
            await w.sessionContext.ready;
            window.__asd = {statuses: []};
            w.sessionContext.statusChanged.connect(
                (_, status) => window.__asd.statuses.push([performance.now(), status]));
        }""")

    def kernel_settled(self) -> bool:
        """The kernel went busy after the last reset, is idle, and has been for :data:`QUIET_S`."""
        return self.page.evaluate(f"""() => {{
            const s = window.__asd.statuses;
            if (!s.some(x => x[1] === 'busy') || s[s.length - 1][1] !== 'idle') return false;
            return performance.now() - s[s.length - 1][0] > {1000 * QUIET_S};
        }}""")

    def run_all(self) -> None:
        self.page.evaluate("() => { window.__asd.statuses = []; }")
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        deadline = time.monotonic() + RUN_ALL_LIMIT_S
        while not (self.kernel_settled() and self.page.evaluate("""() => {
                const w = window.jupyterapp.shell.currentWidget;
                return w.content.widgets.every(c => c.model.type !== 'code' || c.model.executionCount !== null)
                    && ![...w.node.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
                }""")):
            assert time.monotonic() < deadline, f"run all did not finish in {RUN_ALL_LIMIT_S} s"
            time.sleep(0.5)
        failed = self.page.evaluate("""() => [...document.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
            + '.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]')]
            .filter(o => o.closest('.jp-Cell') && /Error|Traceback/.test(o.textContent))
            .map(o => o.textContent.slice(0, 300))""")
        assert not failed, f"a cell failed in JupyterLab: {failed}"

    def images(self, pane: str) -> dict:
        """Images of the last element matching ``pane``: how many, all loaded, and the smallest ratio of
        shown to natural width (1 = shown at full size)."""
        return self.page.evaluate("""(selector) => {
            const panes = document.querySelectorAll(selector);
            if (!panes.length) return {count: -1, loaded: false, scale: 0};
            const imgs = [...panes[panes.length - 1].querySelectorAll('img')];
            return {count: imgs.length, loaded: imgs.every(i => i.complete && i.naturalWidth > 0),
                    scale: Math.min(1, ...imgs.map(i => i.clientWidth / Math.max(i.naturalWidth, 1)))};
        }""", pane)

    def wait_for_images(self, expected: dict[str, int], timeout: float) -> dict[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            seen = {pane: self.images(pane) for pane in expected}
            if all(seen[p]["count"] == n and seen[p]["loaded"] for p, n in expected.items()):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"missing figure: expected {expected} images, found {seen}")
            time.sleep(0.1)

    def update(self, what: str, action, expected: dict[str, int]) -> float:
        """Do ``action`` (a click or a selection), wait for the kernel to settle and every pane of
        ``expected`` to show its images; assert it took at most :data:`UPDATE_LIMIT_S`. Returns seconds."""
        self.page.evaluate("() => { window.__asd.statuses = []; }")
        start = time.monotonic()
        action()
        deadline = start + max(4 * UPDATE_LIMIT_S, 20.0)
        while not self.kernel_settled():
            assert time.monotonic() < deadline, f"{what}: the kernel did not settle"
            time.sleep(0.05)
        self.wait_for_images(expected, timeout=deadline - time.monotonic())
        elapsed = time.monotonic() - start - QUIET_S
        assert elapsed <= UPDATE_LIMIT_S, f"{what}: the update took {elapsed:.1f} s (limit {UPDATE_LIMIT_S} s)"
        return elapsed

    def select(self, selector: str, **option):
        return lambda: self.page.locator(selector).last.select_option(**option)

    def click(self, selector: str, text: str):
        return lambda: self.page.locator(selector).last.get_by_role("button", name=text, exact=True).click()


def _report(name: str, timings: dict[str, float]) -> None:
    print(f"{name}: " + ", ".join(f"{what} {seconds:.2f} s" for what, seconds in timings.items()))


def test_clip_browser_of_the_tour(lab, browser):
    url, token = lab
    tab = LabPage(browser, url, token, "00_dataset_tour.ipynb")
    try:
        tab.run_all()
        pane = ".asd-clip-browser .asd-pane-clip"
        tab.wait_for_images({pane: 1}, timeout=10)
        control = ".asd-clip-browser .asd-control-"
        timings = {
            "machine": tab.update("machine", tab.select(f"{control}machine select", index=1), {pane: 1}),
            "split": tab.update("split", tab.click(f"{control}split", "train"), {pane: 1}),
            "domain": tab.update("domain", tab.click(f"{control}domain", "target"), {pane: 1}),
            "back to test": tab.update("split", tab.click(f"{control}split", "test"), {pane: 1}),
            "label": tab.update("label", tab.click(f"{control}label", "anomaly"), {pane: 1}),
            "clip": tab.update("clip", tab.select(f"{control}clip select", index=2), {pane: 1}),
        }
        _report("00 clip browser", timings)
        assert tab.page.locator(f"{pane} audio").count() == 1
        assert not tab.errors, f"browser console errors: {tab.errors}"
    finally:
        tab.page.close()


def test_error_explorer_of_the_comparison(lab, browser):
    url, token = lab
    tab = LabPage(browser, url, token, "08_comparison.ipynb")
    panes = {".asd-explorer .asd-pane-heatmap": 1, ".asd-explorer .asd-pane-clip": 1,
             ".asd-explorer .asd-pane-facts": 1}
    try:
        # the saved run shows the explorer's first state before any cell runs (stored widget state)
        tab.wait_for_images(panes, timeout=60)
        tab.run_all()
        shown = tab.wait_for_images(panes, timeout=10)
        # the heat map is shown at (nearly) its natural size: 9 pt labels stay >= 9 px
        assert shown[".asd-explorer .asd-pane-heatmap"]["scale"] >= 0.8, shown
        control = ".asd-explorer .asd-control-"
        # a selection that differs from the default one: the first system not selected yet, alone
        other = tab.page.locator(f"{control}systems select").last.evaluate(
            "s => ([...s.options].find(o => !o.selected) || s.options[0]).textContent")
        timings = {
            "machine": tab.update("machine", tab.select(f"{control}machine select", index=1), panes),
            "systems": tab.update("systems", tab.select(f"{control}systems select", label=[other]), panes),
            "clip": tab.update("clip", tab.select(f"{control}clip select", index=3), panes),
            "machine again": tab.update("machine", tab.select(f"{control}machine select", index=0), panes),
        }
        _report("07 explorer", timings)
        assert tab.page.locator(".asd-explorer .asd-pane-clip audio").count() == 1
        assert not tab.errors, f"browser console errors: {tab.errors}"
    finally:
        tab.page.close()

"""`make book` from the smoke run: every notebook has its page, with its figures, offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.notebook, pytest.mark.slow]




class _Page(HTMLParser):
    """The images, scripts and stylesheets a page asks the browser to load."""

    def __init__(self):
        super().__init__()
        self.images, self.loads = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "script" and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("rel") in ("stylesheet", "preload") and attrs.get("href"):
            self.loads.append(attrs["href"])


def _parse(page: Path) -> _Page:
    parser = _Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _local(page: Path, reference: str) -> Path | None:
    """The file a relative reference of ``page`` points to; None for data: URIs."""
    if reference.startswith("data:"):
        return None
    return (page.parent / reference.split("#")[0].split("?")[0]).resolve()


def _figure_outputs(notebook: Path) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return sum(1 for cell in nb.cells for output in cell.get("outputs", [])
               if any(kind in output.get("data", {}) for kind in ("image/png", "image/jpeg", "image/svg+xml")))


@pytest.fixture(scope="module")
def book(smoke_run, tmp_path_factory):
    executed = smoke_run.executed("00_dataset_tour").parent
    out = tmp_path_factory.mktemp("book")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), "--profile", "smoke",
                    "--executed", str(executed), "--no-run", "--out", str(out)], cwd=ROOT, check=True, timeout=1800)
    return out


def test_every_notebook_has_a_page_with_its_figures(book):
    stems = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert stems, "no notebooks found"
    for stem in stems:
        page = book / "html" / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"no book page for {stem}"
        # figures of the executed notebook, widgets' saved figures included (the staged copy)
        expected = _figure_outputs(book / "source" / "notebooks" / f"{stem}.ipynb")
        images = [src for src in _parse(page).images if _local(page, src) is not None]
        on_disk = [src for src in images if _local(page, src).is_file()]
        assert on_disk == images, f"{stem}: images missing on disk: {sorted(set(images) - set(on_disk))}"
        assert len(images) >= expected, f"{stem}: {len(images)} images on the page, {expected} figures executed"
        text = page.read_text(encoding="utf-8")
        assert "Where this is computed" in text and "../generated/asd_utils." in text, stem
    assert _figure_outputs(book / "source" / "notebooks" / "08_comparison.ipynb") > 0


def test_every_page_opens_offline(book):
    html = book / "html"
    pages = sorted(html.rglob("*.html"))
    assert (html / "index.html") in pages and (html / "api.html") in pages
    assert (html / "generated" / "asd_utils.evaluation.metrics.html").is_file()  # API reference from the docstrings
    front = (html / "index.html").read_text(encoding="utf-8")
    assert "first-shot unsupervised anomalous sound detection" in front
    for page in pages:
        parsed = _parse(page)
        remote = [ref for ref in parsed.loads + parsed.images if re.match(r"^(https?:)?//", ref)]
        assert not remote, f"{page.relative_to(html)} loads from the network: {remote}"
        missing = [ref for ref in parsed.loads + parsed.images
                   if _local(page, ref) is not None and not _local(page, ref).is_file()]
        assert not missing, f"{page.relative_to(html)}: missing files {missing}"


def test_pages_open_in_chromium_without_errors(book):
    """Every page except the generated API pages (three of those are opened) loads from file://
    in headless Chromium with no console error, no failed request and no broken image."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    html = book / "html"
    pages = sorted(p for p in html.rglob("*.html") if not {"generated", "_modules"} & set(p.relative_to(html).parts))
    pages += sorted((html / "generated").glob("*.html"))[:3]
    problems = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], timeout=60_000)
        try:
            tab = browser.new_page()
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("requestfailed", lambda r: problems.append(f"failed request: {r.url[:120]}"))
            for page in pages:
                tab.goto(page.as_uri(), wait_until="load", timeout=60_000)
                broken = tab.evaluate("Array.from(document.images)"
                                      ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
                problems += [f"{page.relative_to(html)}: broken image {src[:120]}" for src in broken]
        finally:
            browser.close()
    assert len(pages) > 20
    assert not problems, "\n".join(problems[:20])

"""The Space in a real browser: Debian's headless Chromium driven by Playwright, against the app on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import free_port, random_rgb

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
]
SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]
pytest.importorskip("gradio")
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app_url(module_tiny_model_dir):
    """spaces/app.py served on a free local port, with a tiny random model as the default model."""
    model_dir = module_tiny_model_dir
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIRAGE_SPACE_MODEL", str(model_dir))
        patch.syspath_prepend(str(SPACE_DIR))
        sys.modules.pop("app", None)
        import app

        port = free_port()
        app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield app.demo.local_url
        finally:
            app.demo.close()
            sys.modules.pop("app", None)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh page; every request that is not to the local app is blocked (tests never download)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(app_url) else route.abort())
        page.goto(app_url)
        yield page
    finally:
        context.close()


def slider_images(page, selector: str) -> list[dict]:
    return page.evaluate(
        """selector => Array.from(document.querySelectorAll(selector + ' img')).map(image => ({
            src: image.src, width: image.naturalWidth, height: image.naturalHeight}))""",
        selector,
    )


def fetch_bytes(page, url: str) -> bytes:
    data = page.evaluate(
        "async url => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer()))", url
    )
    return bytes(data)


def test_restore_in_the_browser(page, tmp_path):
    photo = tmp_path / "night street.png"
    Image.fromarray(random_rgb(72, 120)).save(photo)
    page.locator("#restore-input input[type=file]").set_input_files(str(photo))
    page.locator("#restore-input img").first.wait_for(timeout=30_000)  # the upload is shown
    page.locator("#restore-button").click()
    page.wait_for_function(
        "document.querySelectorAll('#restore-slider img').length >= 2 && "
        "Array.from(document.querySelectorAll('#restore-slider img')).every(image => image.complete && image.naturalWidth > 0)",
        timeout=60_000,
    )
    before, after = slider_images(page, "#restore-slider")[:2]
    assert (before["width"], before["height"]) == (after["width"], after["height"]) == (120, 72)
    assert fetch_bytes(page, after["src"])[:8] == b"\x89PNG\r\n\x1a\n"  # lossless, not WebP
    assert page.locator("#restore-summary").inner_text().startswith("Restored 120×72")
    assert "night street_restored" in page.locator("#restore-download").inner_text()
    download = page.locator("#restore-download a").first
    (tmp_path / "restored.png").write_bytes(fetch_bytes(page, download.get_attribute("href")))
    with Image.open(tmp_path / "restored.png") as restored:
        assert restored.format == "PNG" and restored.size == (120, 72)
    page.screenshot(path=str(tmp_path / "restore.png"), full_page=True)


def test_bad_upload_shows_a_message_not_a_traceback(page, tmp_path):
    fake = tmp_path / "broken.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n but the rest is not an image")
    page.locator("#restore-input input[type=file]").set_input_files(str(fake))
    page.wait_for_timeout(500)
    page.locator("#restore-button").click()
    toast = page.get_by_text("not an image that can be read")
    toast.first.wait_for(timeout=30_000)
    assert "Traceback" not in page.content()
    page.wait_for_timeout(500)  # let the toast finish fading in for the screenshot
    page.screenshot(path=str(tmp_path / "bad_upload.png"))


def test_try_it_in_the_browser(page, tmp_path):
    page.get_by_role("tab", name="Try it").click()
    page.locator("#try-input input[type=file]").set_input_files(str(SPACE_DIR / "examples" / "clean" / "chelsea.jpg"))
    page.locator("#try-input img").first.wait_for(timeout=30_000)
    page.locator("#try-button").click()
    page.locator("#try-scores table").wait_for(timeout=60_000)
    assert "restored" in page.locator("#try-scores").inner_text()
    with Image.open(SPACE_DIR / "examples" / "clean" / "chelsea.jpg") as clean:
        size = clean.size
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#try-slider img')).filter(image => image.naturalWidth > 0).length >= 2",
        timeout=30_000,
    )
    degraded, restored = slider_images(page, "#try-slider")[:2]
    assert (degraded["width"], degraded["height"]) == (restored["width"], restored["height"]) == size
    page.screenshot(path=str(tmp_path / "try_it.png"), full_page=True)

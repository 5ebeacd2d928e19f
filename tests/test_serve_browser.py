"""The web page in a real browser: headless Chromium driven by Selenium with the system's
chromedriver (``apt-get install chromium chromium-driver``; no driver is downloaded). Without a
browser the test skips, unless ``IMGZOO_REQUIRE_BROWSER=1`` (set by ``.ci/run``) asks for it to
fail instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from serving import encode_png, live_server, write_seeded_weights

CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    if not Path(CHROMEDRIVER).is_file():
        return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no chromium browser on PATH (apt-get install chromium chromium-driver)"
    return None


def _without_browser(missing: str) -> NoReturn:
    """Skip, or fail where IMGZOO_REQUIRE_BROWSER=1 says the browser test must run."""
    if os.environ.get("IMGZOO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"IMGZOO_REQUIRE_BROWSER=1, but the browser test cannot run: {missing}")
    pytest.skip(missing)


def test_a_missing_browser_fails_only_where_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")  # as every GitHub Actions job has it: not a reason to fail
    monkeypatch.delenv("IMGZOO_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no chromedriver"):
        _without_browser("no chromedriver")
    monkeypatch.setenv("IMGZOO_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match=r"IMGZOO_REQUIRE_BROWSER=1.*no chromedriver"):
        _without_browser("no chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium at 1280x900, a common laptop window."""
    missing = _browser_missing()
    if missing:
        _without_browser(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# The picture an <img> shows, read back through a canvas: its natural size and pixels.
_READ_IMAGE = """
const image = document.getElementById(arguments[0]);
const canvas = document.createElement("canvas");
canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
const pen = canvas.getContext("2d");
pen.drawImage(image, 0, 0);
return [image.naturalWidth, image.naturalHeight,
        Array.from(pen.getImageData(0, 0, canvas.width, canvas.height).data)];
"""


def _shown(driver: Any, element: str) -> tuple[int, int, np.ndarray]:
    width, height, values = driver.execute_script(_READ_IMAGE, element)
    return width, height, np.array(values, np.uint8).reshape(height, width, 4)


def test_the_page_runs_a_task_on_an_uploaded_picture(
    browser: Any, toy_tasks: None, contract_tasks: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    write_seeded_weights(tmp_path, ["toy-upscale", "invert"])
    picture = tmp_path / "picture.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 20, 3), dtype=np.uint8)
    picture.write_bytes(encode_png(pixels))
    with live_server(["invert", "toy-upscale"]) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda driver: len(Select(driver.find_element(By.ID, "task")).options) == 2)
        Select(browser.find_element(By.ID, "task")).select_by_value("toy-upscale")
        browser.find_element(By.ID, "file").send_keys(str(picture))
        wait.until(lambda driver: driver.find_element(By.ID, "run").is_enabled())
        browser.find_element(By.ID, "run").click()
        wait.until(lambda driver: driver.find_element(By.ID, "output").get_attribute("data-ready") == "1")
        width, height, shown_input = _shown(browser, "input-preview")
        out_width, out_height, shown_output = _shown(browser, "output")
        assert (width, height) == (20, 12)
        np.testing.assert_array_equal(shown_input[..., :3], pixels)
        assert (out_width, out_height) == (40, 24)  # toy-upscale doubles each side
        assert not np.array_equal(shown_output[::2, ::2, :3], pixels)
        download = browser.find_element(By.ID, "download")
        assert download.get_attribute("download") == "toy-upscale-result.png" and download.is_displayed()
        assert browser.find_element(By.ID, "status").text == "done"
        assert not browser.find_element(By.ID, "warnings").is_displayed()  # none said


def test_the_page_shows_what_the_task_warns_about_the_picture(
    browser: Any, contract_tasks: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    write_seeded_weights(tmp_path, ["toy-inpaint"])
    picture, mask = tmp_path / "picture.png", tmp_path / "mask.png"
    picture.write_bytes(encode_png(np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)))
    mask.write_bytes(encode_png(np.zeros((12, 20), np.uint8)))  # nothing to fill: the task says so
    with live_server(["toy-inpaint"]) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda driver: len(Select(driver.find_element(By.ID, "task")).options) == 1)
        browser.find_element(By.ID, "file").send_keys(str(picture))
        browser.find_element(By.CSS_SELECTOR, "input[data-input=mask]").send_keys(str(mask))
        wait.until(lambda driver: driver.find_element(By.ID, "run").is_enabled())
        browser.find_element(By.ID, "run").click()
        wait.until(lambda driver: driver.find_element(By.ID, "output").get_attribute("data-ready") == "1")
        note = browser.find_element(By.ID, "warnings")
        assert note.is_displayed()
        assert note.text == "warning: toy-inpaint: the mask is empty, so nothing is filled in"


def test_the_page_runs_a_task_on_a_drawing(browser: Any, toy_tasks: None, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    write_seeded_weights(tmp_path, ["invert"])
    with live_server(["invert"]) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        sketch = browser.find_element(By.ID, "sketch")
        ActionChains(browser).move_to_element_with_offset(sketch, -50, -50).click_and_hold().move_by_offset(
            100, 80
        ).release().perform()
        browser.find_element(By.ID, "use-drawing").click()
        wait.until(lambda driver: driver.find_element(By.ID, "run").is_enabled())
        browser.find_element(By.ID, "run").click()
        wait.until(lambda driver: driver.find_element(By.ID, "output").get_attribute("data-ready") == "1")
        width, height, drawing = _shown(browser, "input-preview")
        assert (width, height) == (256, 256)
        assert (drawing[..., :3] < 128).any() and (drawing[..., :3] == 255).mean() > 0.9  # black on white
        assert _shown(browser, "output")[:2] == (256, 256)


def test_the_page_keeps_input_and_result_side_by_side_and_clears_a_result_after_an_error(
    browser: Any, toy_tasks: None, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    write_seeded_weights(tmp_path, ["invert"])
    picture, broken = tmp_path / "picture.png", tmp_path / "broken.png"
    picture.write_bytes(encode_png(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)))
    broken.write_bytes(encode_png(np.zeros((8, 8, 3), np.uint8))[:40])  # a PNG cut short
    with live_server(["invert"]) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        browser.find_element(By.ID, "file").send_keys(str(picture))
        wait.until(lambda driver: driver.find_element(By.ID, "run").is_enabled())
        browser.find_element(By.ID, "run").click()
        wait.until(lambda driver: driver.find_element(By.ID, "output").get_attribute("data-ready") == "1")
        given, made = (browser.find_element(By.ID, name).rect for name in ("input-preview", "output"))
        assert given["y"] == made["y"] and made["x"] > given["x"] + given["width"], "side by side"
        assert made["y"] + made["height"] <= browser.execute_script("return window.innerHeight"), "in view"
        browser.find_element(By.ID, "file").send_keys(str(broken))
        browser.find_element(By.ID, "run").click()
        wait.until(lambda driver: "error 400" in driver.find_element(By.ID, "status").text)
        assert browser.find_element(By.ID, "output").get_attribute("src") is None
        assert not browser.find_element(By.ID, "download").is_displayed()
        icon = browser.execute_script(
            "const answer = await fetch('/favicon.ico');"
            "return [answer.status, answer.headers.get('content-type')];"
        )
        assert icon == [200, "image/svg+xml"]

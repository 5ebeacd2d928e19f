"""Take docs/images/serve-page.png: the page of ``imgzoo serve colorize edges2photo`` in headless
Chromium, with a drawing turned into a photo by edges2photo.

    PYTHONPATH=core:plugins:tests python docs/serve_screenshot.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from serving import live_server

TARGET = Path(__file__).resolve().parent / "images" / "serve-page.png"
# A minifigure's outline, drawn as pen strokes of (dx, dy) moves from a starting point.
STROKES = [
    ((-40, -90), [(80, 0), (0, 50), (-80, 0), (0, -50)]),  # head
    ((-60, -35), [(120, 0), (15, 90), (-150, 0), (15, -90)]),  # torso
    ((-50, 55), [(0, 70), (40, 0), (0, -70)]),  # left leg
    ((10, 55), [(0, 70), (40, 0), (0, -70)]),  # right leg
    ((-20, -70), [(5, 0)]),  # eyes
    ((15, -70), [(5, 0)]),
    ((-15, -55), [(15, 5), (15, -5)]),  # smile
]


def main() -> None:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1100,720", "--hide-scrollbars"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or ""
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        with live_server(["colorize", "edges2photo"]) as url:
            driver.get(url)
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: len(Select(d.find_element(By.ID, "task")).options) == 2)
            Select(driver.find_element(By.ID, "task")).select_by_value("edges2photo")
            sketch = driver.find_element(By.ID, "sketch")
            for (x, y), moves in STROKES:
                chain = ActionChains(driver).move_to_element_with_offset(sketch, x, y).click_and_hold()
                for dx, dy in moves:
                    chain = chain.move_by_offset(dx, dy)
                chain.release().perform()
            driver.find_element(By.ID, "use-drawing").click()
            wait.until(lambda d: d.find_element(By.ID, "run").is_enabled())
            driver.find_element(By.ID, "run").click()
            wait.until(lambda d: d.find_element(By.ID, "output").get_attribute("data-ready") == "1")
            driver.execute_script("window.scrollTo(0, 0)")  # drawing scrolled the canvas into view
            driver.save_screenshot(str(TARGET))
    finally:
        driver.quit()
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()

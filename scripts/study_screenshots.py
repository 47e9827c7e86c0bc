"""Screenshots of the padis-study reader page for docs/study.md, taken in headless Chromium on a copy of a study
(the copy gets the screenshot reader's session; the study itself is not touched).

  python scripts/study_screenshots.py outputs/study_demo docs/study
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1500,780", "--force-device-scale-factor=1")


def main(study, out) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "study"
        shutil.copytree(study, copy, ignore=shutil.ignore_patterns(".padis.lock"))
        proc = subprocess.Popen([sys.executable, "-m", "padis_plugin.cli.study", "serve", str(copy), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = None
            while url is None:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("server did not start")
                m = re.search(r"http://127\.0\.0\.1:\d+", line)
                url = m[0] if m else None
            opts = Options()
            opts.binary_location = "/usr/bin/chromium"
            for flag in FLAGS + (f"--user-data-dir={tmp}/profile",):
                opts.add_argument(flag)
            d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
            try:
                d.get(url + "/")
                WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "reader").is_displayed())
                d.find_element(By.ID, "reader").send_keys("reader-1", Keys.ENTER)
                viewer = lambda d: d.find_element(By.ID, "viewer")  # noqa: E731
                WebDriverWait(d, 30).until(lambda d: viewer(d).get_attribute("data-ready") == "1")
                d.save_screenshot(str(out / "study_case.png"))
                canvas = d.find_elements(By.CSS_SELECTOR, "#viewer canvas")[1]
                for _ in range(3):
                    ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(canvas, 20, -30), 0, -200).perform()
                    time.sleep(0.2)
                d.find_element(By.ID, "win").send_keys(Keys.ARROW_LEFT * 60)
                ActionChains(d).send_keys("2").perform()
                d.find_element(By.ID, "comment").send_keys("sharpest cortical boundary")
                time.sleep(0.3)
                d.save_screenshot(str(out / "study_case_zoomed.png"))
            finally:
                d.quit()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"wrote {out}/study_case.png and study_case_zoomed.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

"""End to end in a real headless browser (Debian's chromium + chromedriver, driven by selenium): a reader
completes a small study by clicks and key presses, zooms, pans and windows the images, reloads mid-way and
resumes; two more readers answer through the API; analyze reproduces the expected counts.

Screenshots go to the test's temporary folder, or to $PADIS_STUDY_SCREENSHOTS when set."""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import requests

from padis_plugin.study import create, db
from study_fixtures import SOLVERS, make_bench, start_server, stop_server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytest.importorskip("flask", reason="the reader-study server needs the study extra (pip install -e '.[study]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[browser]')")
if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("no browser: /usr/bin/chromium and /usr/bin/chromedriver are missing (apt-get install chromium "
                "chromium-driver; .ci/run installs them where apt-get is available)", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,820")


def browser(profile: Path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS + (f"--user-data-dir={profile}",):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def _viewer(d):
    return d.find_element(By.ID, "viewer")


def _wait_case(d, case_no):
    WebDriverWait(d, 30).until(lambda d: _viewer(d).get_attribute("data-ready") == "1"
                               and _viewer(d).get_attribute("data-case") == str(case_no))


def _shot(d, folder: Path, name: str):
    d.save_screenshot(str(folder / name))
    target = os.environ.get("PADIS_STUDY_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, Path(target) / name)


def _api_reader(url, reader, key, roles):
    token = requests.post(f"{url}/api/login", json={"reader": reader}).json()["token"]
    h = {"X-Session": token}
    for case_no, role in enumerate(roles, start=1):
        requests.get(f"{url}/api/case/{case_no}", headers=h).raise_for_status()
        requests.post(f"{url}/api/answer", json={"case": case_no, "choice": key[(case_no, role)]},
                      headers=h).raise_for_status()


@pytest.mark.slow
def test_a_reader_completes_a_study_in_the_browser(tmp_path):
    bench = make_bench(tmp_path / "bench", n=64)
    study = tmp_path / "study"
    create.create_study([bench], [list(SOLVERS)], 4, study, stratify=["contrast"], seed=0)
    con = sqlite3.connect(study / db.DB_NAME)
    key = {(c, r): p for c, r, p in con.execute("SELECT case_no, role, position FROM key")}
    con.close()
    plan = {"r1": [0, 0, 1, 0], "r2": [0, 2, 1, 0], "r3": [1, 0, 2, 0]}   # majority for role 0: cases 1, 2, 4
    proc, url = start_server(study)
    d = browser(tmp_path / "profile")
    try:
        d.get(url + "/")
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "reader").is_displayed())
        _shot(d, tmp_path, "study_login.png")
        d.find_element(By.ID, "reader").send_keys("r1", Keys.ENTER)
        _wait_case(d, 1)
        assert d.find_element(By.ID, "progress").text == "case 1 of 4"
        # zoom with the wheel over one image: every image follows
        canvases = d.find_elements(By.CSS_SELECTOR, "#viewer canvas")
        assert len(canvases) == 4
        ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(canvases[2]), 0, -300).perform()
        WebDriverWait(d, 5).until(lambda d: float(_viewer(d).get_attribute("data-zoom")) > 1)
        cx = float(_viewer(d).get_attribute("data-cx"))
        ActionChains(d).drag_and_drop_by_offset(canvases[1], 40, 0).perform()  # pan
        assert float(_viewer(d).get_attribute("data-cx")) < cx
        window = float(_viewer(d).get_attribute("data-window"))
        d.find_element(By.ID, "win").send_keys(Keys.ARROW_LEFT * 20)          # narrower window
        assert float(_viewer(d).get_attribute("data-window")) < window
        pos = key[(1, plan["r1"][0])]
        ActionChains(d).send_keys(str(pos)).perform()                          # key 1/2/3 selects
        assert _viewer(d).get_attribute("data-selected") == str(pos)
        _shot(d, tmp_path, "study_case.png")
        ActionChains(d).send_keys(Keys.ENTER).perform()                        # Enter submits
        _wait_case(d, 2)
        assert float(_viewer(d).get_attribute("data-zoom")) == 1               # a new case starts unzoomed
        # case 2 by clicks, with a comment
        d.find_element(By.CSS_SELECTOR, f"button.choose[data-position='{key[(2, plan['r1'][1])]}']").click()
        d.find_element(By.ID, "comment").send_keys("sharpest edges 1 2 3")      # digits typed here choose nothing
        assert _viewer(d).get_attribute("data-selected") == str(key[(2, plan["r1"][1])])
        d.find_element(By.ID, "submit").click()
        _wait_case(d, 3)
        d.refresh()                                                            # reload mid-way: resumes
        _wait_case(d, 3)
        assert d.find_element(By.ID, "progress").text == "case 3 of 4"
        ActionChains(d).send_keys(str(key[(3, plan["r1"][2])]), Keys.ENTER).perform()
        _wait_case(d, 4)
        d.find_element(By.CSS_SELECTOR, f"button.choose[data-position='{key[(4, plan['r1'][3])]}']").click()
        d.find_element(By.ID, "submit").click()
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert d.find_element(By.ID, "progress").text == "4 of 4 answered"
        _shot(d, tmp_path, "study_done.png")
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        for reader in ("r2", "r3"):
            _api_reader(url, reader, key, plan[reader])
    finally:
        d.quit()
        stop_server(proc)

    con = sqlite3.connect(study / db.DB_NAME)
    rows = con.execute("SELECT case_no, position, comment, seconds FROM answers WHERE reader = 'r1' "
                       "ORDER BY case_no").fetchall()
    con.close()
    assert [(c, p) for c, p, _, _ in rows] == [(c, key[(c, plan["r1"][c - 1])]) for c in range(1, 5)]
    assert rows[1][2] == "sharpest edges 1 2 3" and all(s > 0 for *_, s in rows)

    from padis_plugin.cli.study import main
    assert main(["analyze", str(study), "--out", str(tmp_path / "report")]) == 0
    import json
    overall = json.loads((tmp_path / "report" / "report.json").read_text())["rows"][0]
    assert overall["majority"]["k"] == 3 and overall["majority"]["n"] == 4
    assert {r: overall["readers"][r]["k"] for r in plan} == {"r1": 3, "r2": 2, "r3": 2}

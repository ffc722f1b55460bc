"""rate.html: the shared per-rater shuffle, a self-contained page, and a real browser rating a pack.

The browser tests drive Debian's headless Chromium through Selenium: they open the pack's
rate.html from disk (file://), rate with the keyboard, reload, export, score the downloaded
sheet, and check on a screenshot that the image is drawn at its natural size. They skip (with
the reason) where chromium, chromedriver or selenium is missing; `.ci/run` installs them.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from course_sr.results import rating
from course_sr.results.rating import make_rating_pack, read_key, score_ratings
from course_sr.results.rating_page import fnv1a32, pack_id, rater_order

CHROMIUM = os.environ.get("COURSE_SR_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COURSE_SR_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (900, 700)                        # CSS px; device scale factor forced to 1
METHODS = ("bicubic", "SRGAN", "HR")
IMAGES = {"baby": (96, 80), "bird": (88, 72), "wide": (1400, 180)}   # name -> (width, height)
PREFERENCE = {"bicubic": 2, "SRGAN": 4, "HR": 5}                     # what the scripted rater types


# --------------------------------------------------------------------------------------
# The shared shuffle (Python side; the browser test checks the JavaScript side against it)
# --------------------------------------------------------------------------------------
def test_fnv1a32_published_vectors():
    # FNV-1a 32-bit reference values (Fowler, Noll, Vo): "", "a", "foobar"
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_rater_order_is_a_seeded_permutation():
    items = [f"img_{i:04d}.png" for i in range(1, 61)]
    a = rater_order(items, "0123abcd", "ann")
    assert sorted(a) == items and a != items
    assert rater_order(items, "0123abcd", "ann") == a                   # reproducible
    assert rater_order(items, "0123abcd", "bo") != a                    # own order per rater
    assert rater_order(items, "ffff0000", "ann") != a                   # and per pack
    assert rater_order([], "p", "ann") == [] and rater_order(["x"], "p", "ann") == ["x"]
    # pinned: changing the generator on one side only must fail here (and in the browser test)
    assert rater_order(list("abcdefgh"), "pack", "ann") == list("agfehcbd")
    # positions are spread out: over many raters each item lands in each slot about equally
    counts = np.zeros((8, 8), int)
    for r in range(4000):
        for slot, item in enumerate(rater_order(list(range(8)), "pack", f"r{r}")):
            counts[item, slot] += 1
    assert counts.min() > 500 * 0.85 and counts.max() < 500 * 1.15


# --------------------------------------------------------------------------------------
# The pack's page, read as a file
# --------------------------------------------------------------------------------------
def _method_dirs(root: Path, images=IMAGES) -> dict[str, Path]:
    """Random-noise images (any resampling by the browser would show), distinct per method."""
    rng = np.random.default_rng(5)
    dirs = {}
    for m in METHODS:
        d = root / "in" / m
        d.mkdir(parents=True)
        for name, (w, h) in images.items():
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{name}.png")
        dirs[m] = d
    return dirs


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rate")
    info = make_rating_pack(_method_dirs(root), root / "pack", seed=11, raters=["ann", "bo"])
    assert info["page"] == str(root / "pack" / "rate.html")
    return root / "pack"


def _page_data(page: Path) -> dict:
    html = page.read_text(encoding="utf-8")
    m = re.search(r'<script id="pack-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def _sheet_files(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return [r["file"] for r in csv.DictReader(f)]


def test_page_is_self_contained_and_blind(pack):
    html = (pack / "rate.html").read_text(encoding="utf-8")
    # nothing from elsewhere: no URLs, no external scripts, styles, fonts or frames
    assert not re.search(r"https?:|//[a-z]", html.replace("http-equiv", ""), re.I)
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|<iframe", html, re.I)
    data = _page_data(pack / "rate.html")
    files = sorted(p.name for p in (pack / "images").iterdir())
    assert data["files"] == files and data["images"] == "images/"
    assert data["pack"] == pack_id([pack / "images" / f for f in files])
    # the page knows nothing the raters must not: no method or image name, no key
    assert not any(m in html for m in METHODS) and not any(i in html for i in IMAGES)
    assert "_key" not in html and "key.csv" not in html
    # the scale as in the SRGAN paper's MOS test: 1 bad ... 5 excellent
    assert data["labels"] == {"5": "excellent", "4": "good", "3": "fair", "2": "poor", "1": "bad"}
    # the sheets carry the page's order
    assert _sheet_files(pack / "ratings_bo.csv") == rater_order(files, data["pack"], "bo")
    assert "rate.html" in (pack / "README.txt").read_text()




def test_pack_command_names_the_page(tmp_path, capsys):
    dirs = _method_dirs(tmp_path, images={"a": (8, 8)})
    argv = ["--out", str(tmp_path / "p")] + [f"--method={m}={d}" for m, d in dirs.items()]
    assert rating.main_rating_pack(argv) == 0
    assert re.search(r"page: .*rate\.html .*browser", capsys.readouterr().out)


# --------------------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (Debian's) through Selenium, offline, downloads into a temp folder."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            pytest.skip(f"{path} is absent (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--force-color-profile=srgb",
                "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_AVOID_STATS", "true")           # Selenium Manager must not go online
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.set_window_size(*WINDOW)
        yield driver, downloads
    finally:
        driver.quit()


def _open(driver, pack: Path, rater: str | None = None):
    url = (pack / "rate.html").as_uri() + (f"?rater={rater}" if rater else "")
    driver.get(url)
    _wait(driver, "return document.readyState === 'complete'")


def _wait(driver, script: str, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for: {script}")


def _keys(driver, *keys):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def _shown(driver) -> str:
    """The file the page shows, once its pixels are loaded."""
    return _wait(driver, "const i = document.getElementById('photo');"
                         "return i.complete && i.naturalWidth > 0 && i.style.width && i.getAttribute('src')"
                 ).removeprefix("images/")


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")


def test_browser_order_matches_python(browser, pack):
    driver, _ = browser
    from selenium.webdriver.common.keys import Keys

    data = _page_data(pack / "rate.html")
    n = len(data["files"])
    # a rater with a sheet sees the sheet's order; a name typed in the page gets Python's order
    for name, want in (("ann", _sheet_files(pack / "ratings_ann.csv")),
                       ("guest-7", rater_order(data["files"], data["pack"], "guest-7"))):
        _open(driver, pack, name)
        seen = [_shown(driver)]
        for _ in range(n - 1):
            _keys(driver, Keys.ARROW_RIGHT)
            _wait(driver, f"return document.getElementById('photo').getAttribute('src') !== 'images/{seen[-1]}'")
            seen.append(_shown(driver))
        assert seen == want
    # the JavaScript shuffle itself, on many names and list lengths
    rng = np.random.default_rng(0)
    cases = [[[f"f{i}" for i in range(int(rng.integers(0, 300)))], f"{int(rng.integers(2**63)):016x}",
              "".join(rng.choice(list("abcXYZ019_-"), int(rng.integers(1, 12))))] for _ in range(40)]
    got = driver.execute_script("return arguments[0].map(([items, pack, rater]) => raterOrder(items, pack, rater))",
                                cases)
    assert got == [rater_order(*c) for c in cases]


def test_browser_rates_reloads_exports_and_scores(browser, pack):
    driver, downloads = browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    key = read_key(pack)
    n = len(key)
    _open(driver, pack)
    box = driver.find_element(By.ID, "rater")
    box.send_keys("a b", Keys.ENTER)                      # not a usable name: the page says so
    assert "letters, digits" in _text(driver, "message") and not driver.find_element(By.ID, "photo").is_displayed()
    box.clear()
    box.send_keys("carla", Keys.ENTER)
    assert _text(driver, "progress") == f"0 of {n} rated"

    typed: dict[str, int] = {}
    skipped = None

    def rate_shown(i):
        nonlocal skipped
        f = _shown(driver)
        method, image = key[f]
        if i == 4:                                        # one image left blank with the skip key
            skipped = f
            _keys(driver, "s")
        else:
            typed[f] = PREFERENCE[method] - (image == "bird")
            _keys(driver, str(typed[f]))
        return f

    # a held-down key (auto-repeat) does not rate the images that flash past
    for auto_repeat in (True, False):
        driver.execute_cdp_cmd("Input.dispatchKeyEvent", {"type": "keyDown", "key": "3", "text": "3",
                                                          "autoRepeat": auto_repeat})
        driver.execute_cdp_cmd("Input.dispatchKeyEvent", {"type": "keyUp", "key": "3"})
    assert _text(driver, "progress") == f"1 of {n} rated"
    _keys(driver, Keys.ARROW_LEFT)                        # back, and that score cleared again
    _wait(driver, "return document.getElementById('position').textContent.startsWith('image 1 of')")
    _shown(driver)
    _keys(driver, "s")
    _wait(driver, f"return document.getElementById('progress').textContent === '0 of {n} rated'")
    _keys(driver, Keys.ARROW_LEFT)
    _wait(driver, "return document.getElementById('position').textContent.startsWith('image 1 of')")
    for i in range(5):
        last = rate_shown(i)
        _wait(driver, f"return document.getElementById('photo').getAttribute('src') !== 'images/{last}'")
    driver.refresh()                                      # mid-way: the scores must survive a reload
    _wait(driver, "return document.readyState === 'complete'")
    assert "rater=carla" in driver.current_url
    assert _text(driver, "progress") == f"4 of {n} rated"
    assert _text(driver, "position").startswith(f"image 6 of {n}")
    _keys(driver, Keys.ARROW_LEFT)                        # back to the skipped one: still blank
    _wait(driver, "return document.getElementById('position').textContent.startsWith('image 5 of')")
    assert _shown(driver) == skipped and _text(driver, "position").endswith("not rated")
    _keys(driver, Keys.ARROW_LEFT)
    _wait(driver, "return document.getElementById('position').textContent.startsWith('image 4 of')")
    f = _shown(driver)
    assert _text(driver, "position").endswith(f"{typed[f]} ({['bad', 'poor', 'fair', 'good', 'excellent'][typed[f] - 1]})")
    _keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    for i in range(5, n):
        last = rate_shown(i)
        if i < n - 1:
            _wait(driver, f"return document.getElementById('photo').getAttribute('src') !== 'images/{last}'")
    assert _text(driver, "progress") == f"{n - 1} of {n} rated"
    assert "1 image(s) not rated" in _text(driver, "message")

    # export warns about the blank one: cancel first (nothing saved), then accept
    driver.find_element(By.ID, "export").click()
    alert = driver.switch_to.alert
    assert alert.text.startswith(f"1 of {n} images are not rated")
    alert.dismiss()
    time.sleep(0.3)
    assert not list(downloads.iterdir())
    driver.find_element(By.ID, "export").click()
    driver.switch_to.alert.accept()
    sheet = downloads / "ratings_carla.csv"
    end = time.monotonic() + 10
    while not sheet.is_file() and time.monotonic() < end:
        time.sleep(0.05)
    assert sheet.is_file(), f"no download in {downloads}: {list(downloads.iterdir())}"

    rows = list(csv.reader(io.StringIO(sheet.read_text())))
    assert rows[0] == ["file", "score"] and len(rows) == n + 1
    assert [r[0] for r in rows[1:]] == rater_order(_page_data(pack / "rate.html")["files"],
                                                   _page_data(pack / "rate.html")["pack"], "carla")
    assert dict(rows[1:])[skipped] == ""
    # rating-score on the downloaded file gives the MOS that was typed
    result = score_ratings([sheet], pack)
    for m in METHODS:
        want = [s for f, s in typed.items() if key[f][0] == m]
        assert result[m]["mos"] == pytest.approx(np.mean(want)) and result[m]["n"] == len(want)
    assert sum(r["blank"] for r in result.values()) == 1


def test_browser_draws_images_at_natural_size(browser, pack):
    driver, _ = browser
    from selenium.webdriver.common.keys import Keys

    key = read_key(pack)
    wide = next(f for f, (m, img) in key.items() if img == "wide" and m == "SRGAN")
    order = rater_order(_page_data(pack / "rate.html")["files"], _page_data(pack / "rate.html")["pack"], "ann")
    _open(driver, pack, "ann")
    while _shown(driver) != wide:
        before = _shown(driver)
        _keys(driver, Keys.ARROW_RIGHT)
        _wait(driver, f"return document.getElementById('photo').getAttribute('src') !== 'images/{before}'")
    assert order.index(wide) == int(_text(driver, "position").split()[1]) - 1

    geometry = ("const i = document.getElementById('photo'), r = i.getBoundingClientRect(),"
                " s = document.getElementById('stage');"
                "return [i.naturalWidth, i.naturalHeight, r.width, r.height, r.left, r.top,"
                " s.clientWidth, s.scrollWidth, window.devicePixelRatio];")
    nw, nh, w, h, left, top, stage_w, scroll_w, dpr = driver.execute_script(geometry)
    assert dpr == 1 and (nw, nh) == IMAGES["wide"] and (w, h) == (nw, nh)
    assert scroll_w > stage_w                                # wider than the window: it scrolls
    # the screenshot holds the image's own pixels, one screen pixel per image pixel
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    want = np.asarray(Image.open(pack / "images" / wide).convert("RGB"))
    x0, y0 = int(round(left)), int(round(top))
    vis_h, vis_w = min(nh, shot.shape[0] - y0), min(nw, shot.shape[1] - x0)
    assert vis_h > 100 and vis_w >= WINDOW[0] - 20
    got = shot[y0:y0 + vis_h, x0:x0 + vis_w].astype(int)
    assert np.abs(got - want[:vis_h, :vis_w]).max() <= 1

    _keys(driver, "f")                                       # fit to window: shrunk, same shape
    nw, nh, w, h, left, top, stage_w, scroll_w, _ = driver.execute_script(geometry)
    assert w <= stage_w and w < nw and w / h == pytest.approx(nw / nh, rel=1e-3)
    assert scroll_w <= stage_w                               # nothing left to scroll
    _keys(driver, "f")                                       # back to 100%
    assert driver.execute_script(geometry)[2:4] == [nw, nh]

    # on a high-density screen (2 device pixels per CSS pixel) 100% is still 1 image px per device px
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 2, "mobile": False})
    try:
        driver.refresh()
        _shown(driver)
        nw, nh, w, h, *_rest, dpr = driver.execute_script(geometry)
        assert dpr == 2 and (w, h) == (nw / 2, nh / 2)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

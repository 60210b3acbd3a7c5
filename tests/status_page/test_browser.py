"""The status page in a real browser (Debian's headless Chromium through selenium), against
the real sidecar and local Kong during a running ramp: it asks for a token, keeps it in
session storage only, and shows the split and the ramp's progress moving. A screenshot is
written under the test's temporary directory."""

from __future__ import annotations

import functools
import shutil
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from selenium import webdriver  # a test extra: missing is an error, not a skip
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.client.conftest import READ_TOKEN, WRITE_TOKEN

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium or chromedriver not installed (apt-get install chromium chromium-driver; "
    "./scripts/test installs them when run as root)",
)
TARGETS = {"canary": ["10.0.0.3:80"], "baseline": ["10.0.0.2:80"]}


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1200,1400", "--lang=en-GB"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _drive(url: str, ramp_id: str, stop: threading.Event) -> None:
    """Orca's polls move the ramp on; the page only reads."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as c:
        while not stop.wait(0.3):
            c.get(f"/v1/ramps/{ramp_id}")


CARD_STATE = """
const card = document.querySelector(`article[data-upstream="${arguments[0]}"]`);
if (!card) return null;
const bar = card.querySelector(".progress");
return [card.querySelector(".legend").textContent,
        bar ? Number(bar.getAttribute("aria-valuenow")) : -1,
        card.innerText,
        card.querySelectorAll("svg path.canary").length];
"""


def _card_state(driver, upstream: str) -> tuple[str, int] | None:
    """Read in one script: the page redraws every second (countdowns), so element
    references go stale between WebDriver calls."""
    state = driver.execute_script(CARD_STATE, upstream)
    return None if state is None else (state[0], state[1])


def test_the_page_shows_a_running_ramp_moving(live, upstream, browser, tmp_path):
    stop = threading.Event()
    try:
        browser.get(f"{live.url}/?upstream={upstream}")
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)
        # no token yet: the page says how to get one, and shows no data
        login = wait.until(lambda d: d.find_element(By.ID, "login").is_displayed() and
                           d.find_element(By.ID, "login"))  # fmt: skip
        assert "read token" in login.text.lower() and "./scripts/serve" in login.text
        assert not browser.find_elements(By.CSS_SELECTOR, "article[data-upstream]")
        browser.find_element(By.ID, "token").send_keys(READ_TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        wait.until(lambda d: _card_state(d, upstream))  # the page is up: start the ramp now
        with httpx.Client(base_url=live.url,
                          headers={"Authorization": f"Bearer {WRITE_TOKEN}"}) as c:  # fmt: skip
            r = c.post(
                f"/v1/upstreams/{upstream}/ramps",
                json={"split": {"stable": 80, "baseline": 10, "canary": 10}, "duration": 12,
                      "steps": 4, "targets": TARGETS},
            )  # fmt: skip
            assert r.status_code == 202, r.text
            ramp_id = r.json()["id"]
        threading.Thread(target=_drive, args=(live.url, ramp_id, stop), daemon=True).start()

        first = wait.until(lambda d: _card_state(d, upstream))
        seen = {first}
        screenshot = None
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            state = _card_state(browser, upstream)
            seen.add(state)
            if screenshot is None and 0 < state[1] < 100:
                screenshot = tmp_path / "status-page.png"
                browser.save_screenshot(str(screenshot))
            if state[1] == 100 and "canary 10%" in state[0]:
                break
            time.sleep(0.25)
        progresses = sorted({p for _, p in seen if p >= 0})  # -1: before the ramp
        legends = {legend for legend, _ in seen}
        assert progresses[0] < 50 and progresses[-1] == 100, seen
        assert len(progresses) >= 3, seen  # the bar moved through the steps
        assert any("canary 0%" in legend for legend in legends), legends
        assert any("canary 10%" in legend for legend in legends), legends
        assert len(legends) >= 3, legends  # the split moved on the page
        assert screenshot is not None and screenshot.stat().st_size > 10_000

        _, _, card_text, chart_areas = browser.execute_script(CARD_STATE, upstream)
        assert chart_areas == 1  # the hour's chart has a canary area
        assert "lease returns it to stable in" in card_text
        assert "no gateway metrics" in card_text
        events = browser.execute_script("return document.getElementById('events').innerText")
        assert "ramp_started" in events

        storage = browser.execute_script(
            "return [sessionStorage.getItem('kong-canary-token'), localStorage.length, "
            "document.cookie]"
        )
        assert storage == [READ_TOKEN, 0, ""]  # the token lives in this tab's session only
        problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not problems, problems  # no CSP violation, no script error
    finally:
        stop.set()


def test_a_refused_token_is_forgotten_and_explained(live, upstream, browser):
    browser.get(f"{live.url}/?upstream={upstream}")
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "token").send_keys("not-a-valid-token-at-all")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    error = wait.until(lambda d: d.find_element(By.ID, "login-error").text)
    assert "refused the token" in error and "not valid" in error
    assert browser.execute_script("return sessionStorage.length") == 0


def test_the_page_draws_per_variant_5xx_and_p99_from_gateway_metrics(
    live, upstream, browser, tmp_path
):
    from tests.client.test_watch import _kong_log

    assert live.run("set", upstream, "90/5/5", "--canary", "10.0.0.3:80", "--baseline",
                    "10.0.0.2:80").exit_code == 0  # fmt: skip
    browser.get(f"{live.url}/?upstream={upstream}")
    browser.execute_script("sessionStorage.setItem('kong-canary-token', arguments[0])", READ_TOKEN)
    browser.refresh()
    wait = WebDriverWait(browser, 40, poll_frequency=0.3)
    wait.until(lambda d: _card_state(d, upstream))
    for _ in range(4):  # Kong's batches keep coming while the page polls
        _kong_log(live, upstream, "10.0.0.3:80", [200] * 45 + [502] * 5, 120.0)
        _kong_log(live, upstream, "10.0.0.2:80", [200] * 50, 20.0)
        time.sleep(2.2)
    text = wait.until(
        lambda d: (t := d.execute_script(CARD_STATE, upstream)[2]) and "10.00%" in t and t
    )
    assert "no gateway metrics" not in text
    assert "rates over the last" in text
    lines = browser.execute_script(
        f'return document.querySelectorAll(\'article[data-upstream="{upstream}"] .spark '
        "polyline').length"
    )
    assert lines >= 4  # 5xx and P99 sparklines of canary and baseline
    browser.save_screenshot(str(tmp_path / "status-page-metrics.png"))
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_another_site_cannot_frame_the_page(live, browser, tmp_path):
    """Another origin (a page on another port of this host) puts the page in an iframe: the
    browser must refuse to render it there."""
    (tmp_path / "framing.html").write_text(
        f'<iframe id="f" src="{live.url}/" width="600" height="400"></iframe>'
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    other_site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other_site.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{other_site.server_port}/framing.html")
        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        browser.switch_to.frame("f")
        try:
            inside = browser.execute_script(
                "return [document.URL, !!document.getElementById('login')]"
            )
        finally:
            browser.switch_to.default_content()
    finally:
        other_site.shutdown()
        other_site.server_close()
    url, has_page = inside
    assert not has_page, "the status page rendered inside another site's frame"
    assert url.startswith("chrome-error://"), inside

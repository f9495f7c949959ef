"""A person's path, in a real headless Chromium through the proxy: log in, choose a size in the spawn
form, watch the spawn, land in JupyterLab, and run `id` in a JupyterLab terminal. A wrong password
is refused on the login page.
"""

import time

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.pages import SCREENSHOTS, log_in
from tests.hub import HubUser, demo_password, remove_servers_of

pytestmark = pytest.mark.browser

# Runs in the page: open a terminal through the user's server API and return what `id` prints.
RUN_IN_TERMINAL = """
const [command, done] = [arguments[0], arguments[arguments.length - 1]];
const base = location.pathname.replace(/\\/lab.*$/, '');
const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || '';
fetch(base + '/api/terminals', {method: 'POST', headers: {'X-XSRFToken': xsrf}})
  .then(r => r.json())
  .then(term => {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host
                             + base + '/terminals/websocket/' + term.name);
    let out = '';
    // The typed line is echoed (once or twice, as the shell's prompt appears), so the marker is
    // spelled with quotes in it there and appears whole only in what echo prints.
    ws.onopen = () => ws.send(JSON.stringify(['stdin', command + '; echo END-OF-""TEST\\r']));
    ws.onmessage = (e) => {
      const [kind, text] = JSON.parse(e.data);
      if (kind === 'stdout') out += text;
      if (out.includes('END-OF-TEST')) { ws.close(); done(out); }
    };
    setTimeout(() => done('TIMEOUT: ' + out), 20000);
  })
  .catch(err => done('ERROR: ' + err));
"""


def test_wrong_password_is_refused_on_the_login_page(browser: webdriver.Chrome) -> None:
    log_in(browser, "bob", "not-the-password")
    error = WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.login_error")))
    assert error.text == "Invalid username or password"
    assert "/hub/login" in browser.current_url


def test_bob_logs_in_watches_the_spawn_and_runs_id_in_a_terminal(browser: webdriver.Chrome) -> None:
    remove_servers_of("bob")
    bob = HubUser("bob")  # before the form stores his choice: his stop puts back what the hub had
    try:
        log_in(browser, "bob", demo_password())
        form = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "profile")))
        sizes = [o.text for o in form.find_elements(By.TAG_NAME, "option")]
        assert sizes == ["Small: 1 core, 2 GB", "Large: 2 cores, 4 GB"]
        Select(form).select_by_value("small")  # the form selects his previous choice; this test wants small
        browser.find_element(By.CSS_SELECTOR, "#spawn_form [type=submit], #spawn_form input[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda d: "/spawn-pending/" in d.current_url or "/user/bob/" in d.current_url)
        seen_progress = "/spawn-pending/" in browser.current_url
        WebDriverWait(browser, 180).until(lambda d: "/user/bob/lab" in d.current_url)
        WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, "jp-main-dock-panel")))
        WebDriverWait(browser, 60).until(ec.invisibility_of_element_located((By.ID, "jupyterlab-splash")))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "bob-jupyterlab.png"))
        assert seen_progress, "the hub never showed the spawn progress page"
        output = browser.execute_async_script(RUN_IN_TERMINAL, "id; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status")
        assert "uid=10002(bob) gid=10002(bob) groups=10002(bob),20001(astro)" in output, output
        assert "NoNewPrivs:\t1" in output and "CapEff:\t0000000000000000" in output, output
    finally:
        for _ in range(3):
            try:
                bob.stop()
                break
            except Exception:  # the hub may still be finishing the spawn
                time.sleep(2)
        remove_servers_of("bob")

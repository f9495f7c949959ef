"""The dev site's admin (dana, a member of the LDAP group hub-admins named by JOVIAL_LDAP_ADMIN_GROUPS)
in a real headless Chromium through the proxy: she opens the admin panel, finds carol's running
server there and stops it with its button; carol, not an admin, gets a 403 page there and from the
REST API.
"""

import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.pages import SCREENSHOTS, log_in
from tests.hub import HUB_URL, SMALL, HubUser, demo_password, remove_servers_of

pytestmark = pytest.mark.browser


def test_an_admin_stops_another_users_server_in_the_admin_panel_and_a_non_admin_is_refused(browser: webdriver.Chrome) -> None:
    remove_servers_of("carol")
    carol = HubUser("carol")
    try:
        assert carol.model()["admin"] is False
        assert carol.api.get(f"{HUB_URL}/hub/api/users", timeout=10).status_code == 403
        refused = carol.session.get(f"{HUB_URL}/hub/admin", timeout=10)
        assert refused.status_code == 403, refused.status_code
        carol.start(SMALL)
        carol.wait_ready()

        log_in(browser, "dana", demo_password())
        WebDriverWait(browser, 30).until(lambda d: "/hub/login" not in d.current_url)
        browser.get(f"{HUB_URL}/hub/admin")
        # The admin panel (JupyterHub's React app) lists users with a row each; carol's has a Stop Server button.
        stop = WebDriverWait(browser, 30).until(lambda d: next(iter(d.find_elements(
            By.XPATH, "//tr[.//*[normalize-space(text())='carol']]//button[normalize-space(.)='Stop Server']")), None))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "dana-admin-panel.png"))
        stop.click()
        deadline = time.monotonic() + 60
        while "" in carol.model()["servers"]:
            assert time.monotonic() < deadline, "carol's server was not stopped within 60 s of the click"
            time.sleep(0.5)
        assert requests.get(f"{HUB_URL}/user/carol/api/status", headers={"Authorization": f"token {carol.token}"},
                            timeout=10, allow_redirects=False).status_code != 200
    finally:
        carol.stop()
        remove_servers_of("carol")

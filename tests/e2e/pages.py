"""What the browser tests do on the hub's pages."""

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.hub import HUB_URL

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".build" / "screenshots"


def log_in(driver: webdriver.Chrome, username: str, password: str) -> None:
    driver.get(f"{HUB_URL}/hub/login")
    driver.find_element(By.ID, "username_input").send_keys(username)
    driver.find_element(By.ID, "password_input").send_keys(password)
    driver.find_element(By.ID, "login_submit").click()

"""Drives the origin's Swagger UI at /docs in headless Chromium (scripts/docs-browser.sh).

The operations render; "Authorize" with the OAuth2 password flow (scheme `oauth2`, token URL
/auth/login) as the bootstrap admin says it is authorized; "Try it out" → "Execute" on
`GET /users/me` shows a live 200 whose body names the admin. A screenshot of the page is then
written to DOCS_SCREENSHOT. On any failure the relevant text of the page, the browser console
and a screenshot in DOCS_TMP are printed or saved, and the exit status is 1.

Environment: DOCS_BASE (the origin), DOCS_ADMIN_PASSWORD, DOCS_SCREENSHOT, DOCS_TMP.
"""

import os
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["DOCS_BASE"].rstrip("/")
ADMIN = "admin"
ADMIN_PASSWORD = os.environ["DOCS_ADMIN_PASSWORD"]
SCREENSHOT = os.environ["DOCS_SCREENSHOT"]
TMP = os.environ["DOCS_TMP"]
WAIT = 20
# Operations the page must render, as (method, path).
EXPECTED_OPERATIONS = [
    ("get", "/users/me"),
    ("get", "/users"),
    ("post", "/auth/login"),
    ("post", "/auth/register"),
    ("get", "/roles"),
]
MIN_OPERATIONS = 10


class Failed(Exception):
    """A step did not give what it should; `where` is the element whose text explains it."""

    def __init__(self, message, where=None):
        super().__init__(message)
        self.where = where


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The Debian driver, named explicitly: Selenium Manager is never asked to fetch one.
    service = Service(executable_path="/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait_for(driver, condition, message, where=None, timeout=WAIT):
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        raise Failed(message, where) from None


def operation(driver, method, path):
    """The operation block of `method path`, or None."""
    xpath = (
        f"//div[contains(@class, 'opblock-{method}')]"
        f"[.//*[contains(@class, 'opblock-summary-path') and @data-path='{path}']]"
    )
    found = driver.find_elements(By.XPATH, xpath)
    return found[0] if found else None


def check_operations(driver):
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= MIN_OPERATIONS,
        f"fewer than {MIN_OPERATIONS} operations rendered on /docs",
    )
    missing = [f"{m.upper()} {p}" for m, p in EXPECTED_OPERATIONS if operation(driver, m, p) is None]
    if missing:
        raise Failed(f"operations not rendered on /docs: {', '.join(missing)}")
    count = len(driver.find_elements(By.CSS_SELECTOR, ".opblock"))
    print(f"/docs rendered {count} operations, among them "
          + ", ".join(f"{m.upper()} {p}" for m, p in EXPECTED_OPERATIONS))


def authorize(driver):
    """Logs in through the `oauth2` scheme's password flow in the Authorize dialog."""
    button = wait_for(
        driver,
        ec.element_to_be_clickable((By.CSS_SELECTOR, ".auth-wrapper button.authorize")),
        'no "Authorize" button on /docs (does the document declare a security scheme?)',
    )
    button.click()
    dialog = wait_for(
        driver,
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")),
        'the "Authorize" dialog did not open',
    )
    containers = dialog.find_elements(By.CSS_SELECTOR, ".auth-container")
    oauth = [c for c in containers if c.find_elements(By.CSS_SELECTOR, "#oauth_username")]
    if not oauth:
        raise Failed(
            "the Authorize dialog offers no OAuth2 password flow (a security scheme `oauth2` "
            "with flows.password and tokenUrl /auth/login); it shows:",
            dialog,
        )
    box = oauth[0]
    heading = box.find_element(By.CSS_SELECTOR, "h4").text
    if not heading.startswith("oauth2"):
        raise Failed(f"the OAuth2 password flow belongs to {heading!r}, not to `oauth2`", dialog)
    token_url = box.text
    if "/auth/login" not in token_url:
        raise Failed("the OAuth2 password flow does not name /auth/login as its token URL", box)
    box.find_element(By.CSS_SELECTOR, "#oauth_username").send_keys(ADMIN)
    box.find_element(By.CSS_SELECTOR, "#oauth_password").send_keys(ADMIN_PASSWORD)
    box.find_element(By.CSS_SELECTOR, "button.authorize").click()

    def settled(_):
        if box.find_elements(By.XPATH, ".//h6[normalize-space()='Authorized']"):
            return "authorized"
        errors = box.find_elements(By.CSS_SELECTOR, ".errors")
        if errors and errors[0].text.strip():
            return "error"
        return False

    outcome = wait_for(driver, settled, "the OAuth2 login neither succeeded nor failed", box)
    if outcome != "authorized":
        raise Failed("the OAuth2 password login at /auth/login failed; the dialog says:", box)
    if not box.find_elements(By.XPATH, ".//button[normalize-space()='Logout']"):
        raise Failed('authorized, but the dialog offers no "Logout"', box)
    print(f"Authorize: {heading.splitlines()[0]} says Authorized as {ADMIN}")
    dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()
    wait_for(
        driver,
        ec.invisibility_of_element_located((By.CSS_SELECTOR, ".dialog-ux .modal-ux")),
        'the "Authorize" dialog did not close',
    )
    locked = driver.find_elements(By.CSS_SELECTOR, ".auth-wrapper button.authorize.locked")
    if not locked:
        raise Failed('the "Authorize" button does not show the page as authorized')


def try_get_me(driver):
    """Expands GET /users/me, "Try it out", "Execute": the live answer is a 200 naming the admin."""
    block = operation(driver, "get", "/users/me")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", block)
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    try_out = wait_for(
        driver,
        lambda _: next(iter(block.find_elements(By.CSS_SELECTOR, "button.try-out__btn")), False),
        'GET /users/me did not expand to a "Try it out" button',
        block,
    )
    try_out.click()
    execute = wait_for(
        driver,
        lambda _: next(iter(block.find_elements(By.CSS_SELECTOR, "button.execute")), False),
        'no "Execute" button after "Try it out" on GET /users/me',
        block,
    )
    execute.click()
    status_cell = ".live-responses-table .response .response-col_status"
    status = wait_for(
        driver,
        lambda _: next(
            (e.text.strip() for e in block.find_elements(By.CSS_SELECTOR, status_cell) if e.text.strip()),
            False,
        ),
        "no live response shown after Execute on GET /users/me",
        block,
    )
    if status != "200":
        raise Failed(f"GET /users/me answered {status} in the browser, not 200", block)
    body = " ".join(
        e.text for e in block.find_elements(By.CSS_SELECTOR, ".live-responses-table .response-col_description")
    )
    if f'"{ADMIN}"' not in body:
        raise Failed(f"the 200 from GET /users/me does not name {ADMIN!r}", block)
    print(f"Try it out → Execute on GET /users/me: {status}, the body names {ADMIN!r}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", block)


def diagnose(driver, error):
    print(f"docs browser check failed: {error}", file=sys.stderr)
    if driver is None:
        return
    try:
        where = getattr(error, "where", None)
        text = where.text if where is not None else driver.find_element(By.TAG_NAME, "body").text
        print("--- page text ---", file=sys.stderr)
        print(text[:6000], file=sys.stderr)
        console = [f"{e['level']}: {e['message']}" for e in driver.get_log("browser")]
        if console:
            print("--- browser console ---", file=sys.stderr)
            print("\n".join(console[-30:]), file=sys.stderr)
        shot = os.path.join(TMP, "docs-failure.png")
        driver.save_screenshot(shot)
        print(f"--- screenshot: {shot} ---", file=sys.stderr)
    except WebDriverException as e:
        print(f"(could not read the page: {e.msg})", file=sys.stderr)


def main():
    driver = None
    try:
        driver = browser()
        driver.get(f"{BASE}/docs/")
        print(f"opened {driver.current_url} in {driver.capabilities.get('browserVersion', '?')}")
        check_operations(driver)
        authorize(driver)
        try_get_me(driver)
        if not driver.save_screenshot(SCREENSHOT):
            raise Failed(f"could not save the screenshot {SCREENSHOT}")
        print(f"screenshot: {SCREENSHOT}")
    except (Failed, WebDriverException) as error:
        diagnose(driver, error)
        return 1
    finally:
        if driver is not None:
            driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

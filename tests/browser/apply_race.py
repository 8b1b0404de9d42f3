"""The readers' pages in a real browser (Chromium through WebDriver): an admin creates a
book and an event of 2 copies; three readers sign up in their own browser sessions, find
the book by a Korean word, open the event and press apply at the same moment; exactly two
see "won" and one "sold out"; a winner's double click and reload create no second
application; the admin page lists the two winners. Screenshots go to --out.

Run by scripts/browser-test (which starts the server); exits non-zero on any failure.
"""

import argparse
import datetime as dt
import pathlib
import sys
import threading
import time
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

KST = dt.timezone(dt.timedelta(hours=9))
WAIT = 30


def browser(chromedriver):
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=412,915", "--lang=ko-KR"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def wait(driver, condition, seconds=WAIT):
    return WebDriverWait(driver, seconds).until(condition)


def fill(driver, values, scope=""):
    for name, value in values.items():
        field = driver.find_element(By.CSS_SELECTOR, f"{scope} [name={name}]")
        field.clear()
        field.send_keys(value)


def sign_in(driver, base, email, password):
    driver.get(f"{base}/login")
    fill(driver, {"email": email, "password": password})
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait(driver, EC.presence_of_element_located((By.XPATH, "//button[contains(., '로그아웃')]")))


def sign_up(driver, base, email):
    driver.get(f"{base}/signup")
    fill(driver, {"email": email, "name": "독자", "password": "correct horse"})
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait(driver, EC.presence_of_element_located((By.XPATH, "//button[contains(., '로그아웃')]")))


def find_event(driver, base, word, event_id):
    """Search by a Korean word (until the index has the book), open the book, then the event."""
    deadline = time.time() + WAIT
    while True:
        driver.get(f"{base}/search")
        fill(driver, {"q": word})
        driver.find_element(By.CSS_SELECTOR, "form.search button").click()
        hits = driver.find_elements(By.CSS_SELECTOR, "li.hit a")
        if hits:
            break
        if time.time() > deadline:
            raise AssertionError(f"search never found {word}")
        time.sleep(0.3)
    assert driver.find_elements(By.CSS_SELECTOR, "li.hit .snippet b"), "a highlighted match"
    hits[0].click()
    wait(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, f'a[href="/events/{event_id}"]'))).click()
    wait(driver, EC.presence_of_element_located((By.ID, "apply-button")))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--admin-email", default="admin@nanum.local")
    parser.add_argument("--admin-password", default="admin-password")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--out", default="reports/browser")
    parser.add_argument("--lead", type=int, default=30, help="seconds from creating the event to its opening")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = args.base.rstrip("/")

    drivers = []
    try:
        admin = browser(args.chromedriver)
        drivers.append(admin)
        sign_in(admin, base, args.admin_email, args.admin_password)
        admin.get(f"{base}/admin")
        fill(admin, {"title": "소년이 온다", "author": "한강", "publisher": "창비"}, "#add-book")
        admin.find_element(By.CSS_SELECTOR, "#add-book button[type=submit]").click()
        wait(admin, EC.url_matches(r"/books/\d+$"))
        book_id = admin.current_url.rsplit("/", 1)[1]

        admin.get(f"{base}/admin")
        opens = (dt.datetime.now(KST) + dt.timedelta(seconds=args.lead)).strftime("%Y-%m-%dT%H:%M:%S")
        admin.find_element(By.CSS_SELECTOR, f'#add-event select[name=book_id] option[value="{book_id}"]').click()
        fill(admin, {"title": "20시 나눔", "quantity": "2"}, "#add-event")
        field = admin.find_element(By.CSS_SELECTOR, "#add-event input[name=opens_at]")
        admin.execute_script("arguments[0].value = arguments[1]", field, opens)
        admin.find_element(By.CSS_SELECTOR, "#add-event button[type=submit]").click()
        wait(admin, EC.url_matches(r"/admin/events/\d+$"))
        event_id = admin.current_url.rsplit("/", 1)[1]
        print(f"book {book_id}, event {event_id} of 2 copies opening at {opens} KST")

        readers = []
        for _ in range(3):
            driver = browser(args.chromedriver)
            drivers.append(driver)
            sign_up(driver, base, f"reader-{uuid.uuid4().hex[:12]}@example.com")
            find_event(driver, base, "소년", event_id)
            readers.append(driver)
        first = readers[0]
        assert first.find_element(By.ID, "apply-button").get_attribute("disabled") is not None, \
            "the button waits for the opening"
        assert "남음" in first.find_element(By.CSS_SELECTOR, ".countdown").text, "a countdown runs"
        first.save_screenshot(str(out / "event-before.png"))

        # The button is enabled by the page at the opening; then all press at once (the
        # first reader double-clicks).
        for driver in readers:
            wait(driver, EC.element_to_be_clickable((By.ID, "apply-button")), args.lead + WAIT)
        barrier = threading.Barrier(len(readers))
        errors = []

        def press(index, driver):
            try:
                button = driver.find_element(By.ID, "apply-button")
                barrier.wait()
                if index == 0:
                    ActionChains(driver).double_click(button).perform()
                else:
                    button.click()
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=press, args=(i, d)) for i, d in enumerate(readers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

        statuses = []
        for driver in readers:
            result = wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "#result:not([data-status=pending])")))
            statuses.append(result.get_attribute("data-status"))
        print("answers:", statuses)
        assert sorted(statuses) == ["sold_out", "won", "won"], statuses

        winner = next(d for d, s in zip(readers, statuses) if s == "won")
        number = winner.find_element(By.CSS_SELECTOR, ".application-id").text
        winner.save_screenshot(str(out / "result-won.png"))
        loser = next(d for d, s in zip(readers, statuses) if s == "sold_out")
        loser.save_screenshot(str(out / "result-sold-out.png"))

        # The winner reloads the answer (the browser resubmits the same form, same key),
        # then opens the event again and presses apply once more (a new page, a new key).
        winner.refresh()
        try:
            winner.switch_to.alert.accept()
        except Exception:
            pass
        result = wait(winner, EC.presence_of_element_located((By.ID, "result")))
        assert result.get_attribute("data-status") in ("won", "already_applied"), result.get_attribute("data-status")
        assert winner.find_element(By.CSS_SELECTOR, ".application-id").text == number
        winner.get(f"{base}/events/{event_id}")
        wait(winner, EC.element_to_be_clickable((By.ID, "apply-button"))).click()
        again = wait(winner, EC.presence_of_element_located((By.ID, "result")))
        assert again.get_attribute("data-status") == "already_applied", again.get_attribute("data-status")
        assert winner.find_element(By.CSS_SELECTOR, ".application-id").text == number

        first.get(f"{base}/events/{event_id}")
        wait(first, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-live-remaining]"), "0"))
        first.save_screenshot(str(out / "event-after.png"))

        admin.get(f"{base}/admin/events/{event_id}")
        rows = admin.find_elements(By.CSS_SELECTOR, "#winners tr.winner")
        numbers = [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
        print("winners (allocation order):", numbers)
        assert len(rows) == 2, f"two winners listed, got {len(rows)}"
        assert numbers == sorted(numbers, key=int), "allocation order"
        assert number in numbers
        admin.save_screenshot(str(out / "admin-winners.png"))
        first.get(f"{base}/")
        first.save_screenshot(str(out / "home.png"))
        print(f"browser test passed; screenshots in {out}")
        return 0
    finally:
        for driver in drivers:
            try:
                driver.quit()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())

"""The web UI in a real browser: headless Chromium (Debian's, driven by selenium through
Debian's chromedriver) opens every page of a running `tarn serve` over the quickstart lake,
runs a query with Ctrl+Enter and charts it, and writes a screenshot of each page. Prints the
console's errors and warnings, and what it saw, as JSON on its last line."""

import json
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

# A form's button or a refresh replaces the page under a wait: an element found on the old
# page goes stale, and the new page may not have drawn it yet. Waits try again.
PAGE_CHANGING = (NoSuchElementException, StaleElementReferenceException)

base, shots = sys.argv[1], sys.argv[2]
# `open` (no --auth: every page, every write control), or `read-only:TOKEN` (signed in with a
# read-only token under --auth: no write control, and a forged form is refused).
mode = sys.argv[3] if len(sys.argv) > 3 else "open"
HOSTILE = "<img src=x onerror=alert(1)>"
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
seen = {"problems": [], "pages": [], "titles": {}}


def settle(name):
    WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.execute_script("return document.readyState") == "complete")
    time.sleep(0.3)
    for entry in d.get_log("browser"):
        if entry["level"] in ("SEVERE", "WARNING"):
            seen["problems"].append([name, entry["message"]])
    d.save_screenshot(f"{shots}/{name}.png")
    seen["pages"].append(name)
    seen["titles"][name] = d.find_element(By.TAG_NAME, "h1").text


def visit(path, name):
    d.get(base + path)
    settle(name)


def no_alert():
    try:
        d.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def api(method, path, body=b""):
    req = urllib.request.Request(base + path, data=body, method=method)
    if method == "POST":
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req) as r:
        return r.status


def read_only(token):
    visit("/ui/models", "ro-redirect")
    seen["redirected_to"] = d.current_url.split("/ui/")[1]
    d.find_element(By.NAME, "token").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "form[action='/ui/sign-in'] button").click()
    WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: "sign-in" not in d.current_url)
    visit("/ui/models/delays", "ro-model")
    seen["who"] = d.find_element(By.CSS_SELECTOR, "span.who").text
    seen["write_controls"] = len(d.find_elements(By.CSS_SELECTOR, "form.decide, form.alias, section.aliases button"))
    visit("/ui/executions?pipeline=slow", "ro-executions")
    d.find_element(By.CSS_SELECTOR, "main table tbody a").click()
    settle("ro-execution")
    seen["execution_controls"] = len(d.find_elements(By.CSS_SELECTOR, "form[action$='/retry'], form[action$='/cancel']"))
    attempt = d.find_element(By.CSS_SELECTOR, "pre.logs").get_attribute("data-attempt")
    seen["logs_with_session"] = d.execute_script(
        "return fetch(location.pathname + '/logs?attempt=' + arguments[0], {credentials: 'same-origin'})"
        ".then(function (r) { return r.text().then(function (t) { return [r.status, t.trim()]; }); });",
        attempt)
    # A forged form, carrying the page's own CSRF token from this browser: still refused.
    csrf = d.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    seen["forged"] = d.execute_script(
        "return fetch('/ui/models/delays/aliases', {method: 'POST', credentials: 'same-origin',"
        " headers: {'content-type': 'application/x-www-form-urlencoded'},"
        " body: 'csrf=' + encodeURIComponent(arguments[0]) + '&alias=forged&version=1&action=set'})"
        ".then(function (r) { return r.status; });", csrf)
    # The console's note of that refusal is what was asked for, not a problem of a page.
    seen["forged_console"] = [e["message"] for e in d.get_log("browser") if "403" in e["message"]]
    d.find_element(By.CSS_SELECTOR, "span.who button").click()
    WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: "sign-in" in d.current_url)
    visit("/ui/models", "ro-signed-out")
    seen["after_sign_out"] = d.current_url.split("/ui/")[1]


try:
    if mode.startswith("read-only:"):
        read_only(mode.split(":", 1)[1])
    else:
        # A column named as markup, and a step whose log line is a script: both shown as text.
        api("PUT", "/api/v1/zones/flights/raw/objects/hostile/hostile.csv",
            f"id,\"{HOSTILE}\"\n1,<script>alert(3)</script>\n".encode())
        api("POST", "/api/v1/crawls", json.dumps({"scope": "flights/raw"}).encode())
        api("PUT", "/api/v1/zones/flights/raw/objects/slow/go.txt", b"go")
        visit("/ui/tables/flights.raw.hostile", "hostile-table")
        seen["hostile_header"] = [th.text for th in d.find_elements(By.CSS_SELECTOR, "table.rows th")]
        seen["hostile_cells"] = [td.text for td in d.find_elements(By.CSS_SELECTOR, "table.rows td")]
        seen["no_alert"] = no_alert()
        # The slow pipeline's execution: its log line followed live, then cancelled.
        for _ in range(100):
            d.get(base + "/ui/executions?pipeline=slow")
            links = d.find_elements(By.CSS_SELECTOR, "main table tbody a")
            if links:
                break
            time.sleep(0.3)
        settle("slow-executions")
        links[0].click()
        WebDriverWait(d, 30, ignored_exceptions=PAGE_CHANGING).until(lambda d: "alert" in (d.find_elements(By.CSS_SELECTOR, "pre.logs") or [d.find_element(By.TAG_NAME, "h1")])[0].text)
        seen["log_line"] = d.find_element(By.CSS_SELECTOR, "pre.logs").text.strip()
        seen["no_alert_in_logs"] = no_alert()
        settle("execution-running")
        d.find_element(By.CSS_SELECTOR, "form[action$='/cancel'] button").click()
        WebDriverWait(d, 30, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_element(By.CSS_SELECTOR, "main p span.status, main span.status").text == "cancelled")
        seen["after_cancel"] = d.find_element(By.CSS_SELECTOR, "main span.status").text
        # What the step printed before it was stopped stays its log, once the worker has
        # stopped the step and ended its attempt.
        def attempt_ended(d):
            d.refresh()
            return d.find_element(By.CSS_SELECTOR, "details summary span.status").text != "running"
        WebDriverWait(d, 60, poll_frequency=1, ignored_exceptions=PAGE_CHANGING).until(attempt_ended)
        seen["attempt_after_cancel"] = d.find_element(By.CSS_SELECTOR, "details summary span.status").text
        seen["logs_after_cancel"] = d.find_element(By.CSS_SELECTOR, "pre.logs").get_attribute("textContent").strip()
        settle("execution-cancelled")
        visit("/", "overview")
        visit("/ui/tables", "catalog")
        d.find_element(By.LINK_TEXT, "flights.trusted.flights").click()
        seen["table_uses"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                                for tr in d.find_elements(By.CSS_SELECTOR, "section.uses tbody tr")]
        seen["rejected_heading"] = d.find_element(By.CSS_SELECTOR, "#rejected h2").text
        seen["contract"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")][:3]
                            for tr in d.find_elements(By.CSS_SELECTOR, "#contract tbody tr")]
        seen["rejected_reasons"] = sorted({tr.find_elements(By.TAG_NAME, "td")[0].text
                                             for tr in d.find_elements(By.CSS_SELECTOR, "#rejected table.rows tbody tr")})
        settle("table")
        d.find_element(By.LINK_TEXT, "Query it").click()
        settle("sql-editor")
        # A result column named as markup (SQL keeps the name as written): its header and the
        # chart's column choices show it as text.
        query = d.find_element(By.ID, "query")
        query.clear()
        query.send_keys(f'SELECT 1 AS "{HOSTILE}", 2 AS n')
        query.send_keys(Keys.CONTROL, Keys.ENTER)
        WebDriverWait(d, 20, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.rows tbody tr"))
        seen["hostile_result_header"] = [th.text for th in d.find_elements(By.CSS_SELECTOR, "table.rows th")]
        seen["hostile_chart_choices"] = sorted({o.text for o in d.find_elements(By.CSS_SELECTOR, "select option")})
        seen["no_alert_in_sql"] = no_alert()
        query = d.find_element(By.ID, "query")
        query.clear()
        query.send_keys("SELECT carrier, count(*) AS flights FROM flights.trusted.flights GROUP BY carrier ORDER BY flights DESC, carrier")
        query.send_keys(Keys.CONTROL, Keys.ENTER)
        WebDriverWait(d, 20, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, "table.rows tbody tr"))
        Select(d.find_element(By.NAME, "kind")).select_by_value("bar")
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart canvas"))
        seen["rows"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                        for tr in d.find_elements(By.CSS_SELECTOR, "table.rows tbody tr")]
        seen["recent"] = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#recent a")]
        settle("sql-result")
        # The query saved as a tile of a new dashboard, which then draws it.
        d.find_element(By.CSS_SELECTOR, "details.save-tile summary").click()
        d.find_element(By.CSS_SELECTOR, "details.save-tile input[name=dashboard]").send_keys("browser")
        d.find_element(By.CSS_SELECTOR, "details.save-tile input[name=title]").send_keys("Flights by <carrier>")
        Select(d.find_element(By.CSS_SELECTOR, "details.save-tile select[name=chart]")).select_by_value("bar")
        d.find_element(By.CSS_SELECTOR, "details.save-tile button[type=submit]").click()
        WebDriverWait(d, 20, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile-chart canvas"))
        seen["saved_tile"] = [d.current_url.split("/ui/")[1], d.find_element(By.CSS_SELECTOR, ".tile h2").text]
        settle("dashboard-saved")
        visit("/ui/executions", "executions")
        d.find_element(By.CSS_SELECTOR, "main table tbody a").click()
        settle("execution")
        seen["timeline_bars"] = [b.get_attribute("style") for b in d.find_elements(By.CSS_SELECTOR, ".timeline .bar")]
        visit("/ui/pipelines", "pipelines")
        d.find_element(By.LINK_TEXT, "daily_flights").click()
        seen["graph_nodes"] = [t.text for t in d.find_elements(By.CSS_SELECTOR, "svg.graph g.node text:first-of-type")]
        settle("pipeline")
        visit("/ui/experiments", "experiments")
        # The experiment with runs (the training's), not the empty Default one.
        d.find_element(By.XPATH, "//main//table/tbody/tr[number(td[3]) > 0]/td[2]/a").click()
        seen["runs"] = len(d.find_elements(By.CSS_SELECTOR, "table.runs tbody tr"))
        settle("experiment")
        d.find_element(By.CSS_SELECTOR, "table.runs tbody td a").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".series-chart canvas"))
        settle("run")
        visit("/ui/dashboards", "dashboards")
        d.find_element(By.LINK_TEXT, "Flight KPIs").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile-chart canvas")) >= 2)
        seen["tile_numbers"] = [p.text for p in d.find_elements(By.CSS_SELECTOR, ".tile p.number")]
        seen["tile_charts"] = len(d.find_elements(By.CSS_SELECTOR, ".tile-chart canvas"))
        seen["tile_errors"] = [p.text for p in d.find_elements(By.CSS_SELECTOR, ".tile p.error")]
        settle("dashboard")
        visit("/ui/monitors", "monitors")
        d.find_element(By.LINK_TEXT, "arrival_delay").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".series-chart canvas"))
        seen["monitor_charts"] = len(d.find_elements(By.CSS_SELECTOR, ".series-chart canvas"))
        seen["baseline_fields"] = [tr.find_elements(By.TAG_NAME, "td")[0].text
                                   for tr in d.find_elements(By.CSS_SELECTOR, "#baseline tbody tr")]
        seen["monitor_alerts"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")][1:3]
                                    for tr in d.find_elements(By.XPATH, "//h2[starts-with(., 'Alerts')]/following-sibling::table[1]/tbody/tr")]
        settle("monitor")
        visit("/ui/models", "models")
        d.find_element(By.LINK_TEXT, "delays").click()
        settle("model")
        reason = d.find_element(By.CSS_SELECTOR, "form.decide input[name=reason]")
        reason.send_keys("retrained on drifted data; checked by the browser test")
        d.find_element(By.CSS_SELECTOR, "form.decide button[value=approve]").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "form.decide"))
        seen["approvals"] = [s.text for s in d.find_elements(By.CSS_SELECTOR, "main table tbody td span.status")]
        settle("model-approved")
        # An alias pointed at the approved version from the page.
        d.find_element(By.CSS_SELECTOR, "form.alias input[name=alias]").send_keys("browser")
        Select(d.find_element(By.CSS_SELECTOR, "form.alias select[name=version]")).select_by_value("2")
        d.find_element(By.CSS_SELECTOR, "form.alias button[type=submit]").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: "@browser" in d.find_element(By.CSS_SELECTOR, "section.aliases").text)
        seen["aliases"] = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")][:2]
                             for tr in d.find_elements(By.CSS_SELECTOR, "section.aliases tbody tr")]
        settle("model-aliased")
        # From the newest version to the run that made it, and its artifacts.
        d.find_element(By.CSS_SELECTOR, "main table a[href^='/ui/runs/']").click()
        seen["version_run"] = d.find_element(By.TAG_NAME, "h1").text
        settle("version-run")
        # The artifact tree: open the model's folder, download its MLmodel.
        d.find_element(By.PARTIAL_LINK_TEXT, "model/").click()
        settle("run-artifacts")
        files = {a.text: a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "table.artifacts a[download]")}
        seen["artifact_files"] = sorted(files)
        with urllib.request.urlopen(files["MLmodel"]) as r:
            seen["mlmodel_download"] = [r.headers.get("content-disposition"), "flavors:" in r.read().decode()]
        visit("/ui/endpoints", "endpoints")
        d.find_element(By.LINK_TEXT, "arrival_delay").click()
        WebDriverWait(d, 10, ignored_exceptions=PAGE_CHANGING).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".series-chart canvas")) >= 3)
        seen["endpoint_charts"] = len(d.find_elements(By.CSS_SELECTOR, ".series-chart canvas"))
        seen["endpoint_requests"] = d.execute_script(
            "return JSON.parse(document.getElementById('traffic-0').textContent).series"
            ".reduce(function (n, s) { return n + s.points.reduce(function (m, p) { return m + p[1]; }, 0); }, 0);")
        settle("endpoint")
        fields = d.find_elements(By.CSS_SELECTOR, "form.invoke input[type=text]")
        seen["form_fields"] = [f.get_attribute("name") for f in fields]
        for f in fields:
            f.send_keys("1")
        d.find_element(By.CSS_SELECTOR, "form.invoke button[type=submit]").click()
        WebDriverWait(d, 20, ignored_exceptions=PAGE_CHANGING).until(lambda d: d.find_elements(By.CSS_SELECTOR, "pre.answer"))
        seen["answer"] = [d.find_element(By.CSS_SELECTOR, "#try h3 span.status").text,
                            "predictions" in d.find_element(By.CSS_SELECTOR, "pre.answer").text]
        settle("endpoint-answered")
finally:
    d.quit()
print(json.dumps(seen))

#!/usr/bin/env python
"""The MLflow UI's runs table in headless Chromium: what it shows, and a PNG of it.

    python scripts/mlflow_screenshot.py --store sqlite:///results/mlflow.db --experiment fau-synth \
        --out docs/mlflow_runs.png          # after `make run`: starts `mlflow ui` on the store itself
    python scripts/mlflow_screenshot.py --url http://127.0.0.1:5000 --experiment fau-synth --out runs.png

It opens the experiment's runs table (`fau.mlflow_runs.runs_page`),
expands every parent run to show its fold runs, waits until each fold run's
Dataset cell is filled, closes MLflow's assistant panel and takes the
screenshot; it prints the table's rows (run, dataset). The tests drive the
UI with the same functions. Browser: Debian's `chromium` and
`chromium-driver` (scripts/ci-system-deps.sh) through selenium, started
with a fresh profile and no network but the UI's; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver",)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars"]
NAME_COL = 'attributes.`Run Name`'
DATASET_COL = 'attributes.`Dataset`'


def browser_paths() -> tuple[str, str] | None:
    """(chromium, chromedriver) of Debian's packages, or None."""
    chromium = next((p for p in CHROMIUM if Path(p).is_file()), None)
    driver = next((p for p in CHROMEDRIVER if Path(p).is_file()), None)
    return (chromium, driver) if chromium and driver else None


@contextmanager
def chromium(width: int = 1600, height: int = 900) -> Iterator:
    """Headless Chromium through chromedriver, in a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    if paths is None:
        raise SystemExit("chromium / chromedriver not found: apt-get install chromium chromium-driver "
                         "(scripts/ci-system-deps.sh)")
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium: never look for a browser to download
    with tempfile.TemporaryDirectory(prefix="fau-chromium-") as profile:
        opts = webdriver.ChromeOptions()
        opts.binary_location = paths[0]
        for arg in [*CHROMIUM_ARGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
            opts.add_argument(arg)
        driver = webdriver.Chrome(options=opts, service=Service(paths[1]))
        try:
            yield driver
        finally:
            driver.quit()


def experiment_id(url: str, name: str) -> str:
    import json
    import urllib.parse

    q = urllib.parse.urlencode({"experiment_name": name})
    with urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/get-by-name?{q}", timeout=30) as r:
        return json.loads(r.read())["experiment"]["experiment_id"]


def _rows(driver) -> dict[str, dict[str, str]]:
    """The table's rows by run ID: run name and dataset cell text."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    out: dict[str, dict[str, str]] = {}
    try:
        for cell in driver.find_elements(By.CSS_SELECTOR, ".ag-row [role=gridcell][col-id]"):
            row = cell.find_element(By.XPATH, "./ancestor::*[@row-id][1]")
            col = cell.get_attribute("col-id")
            if col in (NAME_COL, DATASET_COL):
                words = cell.text.split()
                if col == NAME_COL and words and words[0].startswith("#"):
                    words = words[1:]  # the run's colour, as text for screen readers
                out.setdefault(row.get_attribute("row-id"), {})[col] = " ".join(words)
    except StaleElementReferenceException:
        return {}
    return {rid: {"name": v.get(NAME_COL, ""), "dataset": v.get(DATASET_COL, "")} for rid, v in out.items()}


def open_runs_table(driver, url: str, experiment: str, expect_children: int = 1, timeout: float = 90.0) -> dict:
    """Open the runs table of `experiment`, expand the parent runs, wait
    until at least `expect_children` child runs show a Dataset cell;
    return {"url", "rows": {run_id: {name, dataset}}, "page": visible text}."""
    from selenium.webdriver.common.by import By

    from fau.mlflow_runs import runs_page

    page = runs_page(url, experiment_id(url, experiment))
    driver.get(page)
    deadline = time.time() + timeout
    expanded: set[str] = set()
    rows: dict = {}
    while time.time() < deadline:
        for b in driver.find_elements(By.CSS_SELECTOR, 'button[data-component-id="mlflow.assistant.chat_panel.close"]'):
            if b.is_displayed():
                b.click()
        # The expander of a parent run: a button in its name cell (children start collapsed).
        expanders = f'[col-id="{NAME_COL}"] button[data-component-id*="runnamecellrenderer"]'
        for b in driver.find_elements(By.CSS_SELECTOR, expanders):
            rid = b.find_element(By.XPATH, "./ancestor::*[@row-id][1]").get_attribute("row-id")
            if rid not in expanded and b.is_displayed():
                b.click()
                expanded.add(rid)
        rows = _rows(driver)
        children = [r for rid, r in rows.items() if rid not in expanded]
        filled = [r for r in children if r["dataset"] not in ("", "-")]
        if expanded and len(filled) >= expect_children:
            # "Expand rows": every dataset of a run (training and testing), not the first and "+1".
            for toggle in driver.find_elements(By.XPATH, "//button[@aria-pressed='false'][contains(., 'Expand rows')]"):
                toggle.click()
            time.sleep(1.5)  # let the last cells paint
            rows = _rows(driver) or rows
            break
        time.sleep(0.5)
    body = driver.find_element(By.TAG_NAME, "body").text
    return {"url": page, "rows": rows, "parents": sorted(expanded), "page": body}


@contextmanager
def mlflow_ui(store: str, workdir: Path) -> Iterator[str]:
    """`mlflow ui` on `store`, on a free loopback port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(workdir / "mlflow-ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host",
                             "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"mlflow ui did not start: {(workdir / 'mlflow-ui.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="a running MLflow server / UI, e.g. http://127.0.0.1:5000")
    src.add_argument("--store", help="a backend store to start `mlflow ui` on, e.g. sqlite:///results/mlflow.db")
    p.add_argument("--experiment", required=True, help="experiment name (the config's mlflow.experiment)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=720)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fau-ui-") as tmp:
        with (mlflow_ui(args.store, Path(tmp)) if args.store else _given(args.url)) as url, \
                chromium(args.width, args.height) as driver:
            table = open_runs_table(driver, url, args.experiment)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    for rid, row in table["rows"].items():
        print(f"{row['name']:<28} {row['dataset']:<60} {rid}")
    print(f"{args.out}: {table['url']}")
    return 0


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url.rstrip("/")


if __name__ == "__main__":
    sys.exit(main())

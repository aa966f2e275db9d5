"""The explorer in a real headless Chromium (Debian's, driven by Playwright): a devnet started with
``pot devnet up`` runs one order placed with ``pot client place-order``; the explorer page, open
while the order runs, shows it settle by itself (live updates), then the order, its winner and its
settlement with the transaction hash and gas. axe-core checks every page for serious or critical
accessibility violations. Screenshots and axe reports land in ``test-artifacts/explorer/``.

Skip it locally with ``-m "not browser"``; CI installs chromium (scripts/install-browser.sh) and runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).parents[2]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("POT_TEST_ARTIFACTS", REPO / "test-artifacts")) / "explorer"
#: what works in this sandbox and on CI: no GPU, no sandbox (root), nothing phoning home
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEVNET = """
[devnet]
miners = 1
validators = 1
verifiers = 0
clients = 1
[chain]
min_reveal_duration = 2
[client]
model = { hidden = [16] }
epochs = 3
train_duration = 30
validate_duration = 15
challenge_duration = 2
reveal_duration = 4
[miner]
commit_margin_s = 3
min_train_s = 1
"""


def _need(what: str, fix: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI: {fix}")
    pytest.skip(f"{what} is missing: {fix} (or deselect with -m 'not browser')")


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        _need("chromium", "run `bash scripts/install-browser.sh` as root")
    return path


def pot(*args, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "pot.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def axe_check(page, name: str, axe_source: str) -> dict:
    """axe-core's violations on the page as it stands; the report is kept as an artifact."""
    page.evaluate(axe_source)   # evaluated over CDP: the page's CSP (script-src 'self') stays as served
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    report = [{"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]]}
              for v in result["violations"]]
    (ARTIFACTS / f"{name}.axe.json").write_text(json.dumps(report, indent=2))
    return {"page": name, "violations": report}


def test_explorer_shows_a_devnet_order_settle(tmp_path):
    exe = chromium()
    if not AXE.exists():
        _need("node_modules/axe-core", "run `npm ci`")
    from playwright.sync_api import expect, sync_playwright

    t_start = time.monotonic()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "devnet.toml"
    cfg.write_text(DEVNET)
    root = tmp_path / "net"
    up = pot("devnet", "up", "--config", str(cfg), "--dir", str(root))
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        state = json.loads((root / "devnet.json").read_text())
        explorer = state["api_urls"][0] + "/"
        assert re.search(rf"explorer\s+{re.escape(explorer)}", up.stdout), up.stdout  # `up` tells where it is
        key = json.loads((root / "accounts.json").read_text())["accounts"]["client-1"]["key"]
        placed = pot("client", "place-order", "--config", state["clients"]["client-1"], env={"POT_PRIVATE_KEY": key})
        assert placed.returncode == 0, placed.stdout + placed.stderr
        oid = int(placed.stdout.strip().splitlines()[-1])

        reports = []
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=exe,
                                                       args=CHROMIUM_ARGS, headless=True,
                                                       viewport={"width": 1280, "height": 900})
            try:
                page = ctx.new_page()
                foreign, errors = [], []
                page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(explorer) else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                axe_source = AXE.read_text()

                def shot(name: str) -> None:
                    path = ARTIFACTS / f"{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot {path}")

                # open while the order runs: the page must follow it to its settlement by itself
                page.goto(f"{explorer}#/orders/{oid}")
                expect(page.get_by_role("heading", name=f"Order {oid}", exact=True)).to_be_visible()
                expect(page.locator("#live-region")).to_contain_text("Training", timeout=30_000)
                shot("order-running")
                reports.append(axe_check(page, "order-running", axe_source))
                outcome = page.locator("section", has=page.get_by_role("heading", name="Outcome"))
                expect(outcome.get_by_text("executed", exact=True)).to_be_visible(timeout=180_000)

                # the page's answers are the ledger's and the chain's
                import httpx

                api = state["api_urls"][0]
                out = httpx.get(f"{api}/v1/orders/{oid}/outcome", timeout=10).json()
                rcpt = httpx.get(f"{api}/v1/settlements/{out['nonce']}/receipt", timeout=10).json()
                assert out["winner"] == state["accounts"]["miner-1"]["address"]
                expect(outcome.locator(f'a[title="{out["winner"]}"]').first).to_be_visible()
                expect(outcome.locator("code.tx")).to_have_text(out["txHash"])
                expect(outcome).to_contain_text(f"{rcpt['gasUsed']:,}")
                expect(outcome).to_contain_text("Payouts (committee tax included)")
                expect(page.get_by_text("settled", exact=True).first).to_be_visible()
                shot("order-settled")
                reports.append(axe_check(page, "order-settled", axe_source))

                page.goto(f"{explorer}#/")
                overview = page.locator("#live-region")
                expect(overview.get_by_role("link", name=f"Order {oid}", exact=True)).to_be_visible(timeout=20_000)
                expect(overview.get_by_text("digests agree")).to_be_visible()
                expect(overview).to_contain_text("4 of 4 members answering")
                expect(page.locator("svg title", has_text="Gas used by each executed settlement")).to_have_count(1)
                expect(page.locator("svg title", has_text="Phases of the most recent orders")).to_have_count(1)
                shot("overview")
                reports.append(axe_check(page, "overview", axe_source))

                page.goto(f"{explorer}#/settlements/{out['nonce']}")
                expect(page.locator("code.tx")).to_have_text(out["txHash"], timeout=20_000)
                expect(page.locator("#live-region")).to_contain_text(f"{rcpt['gasUsed']:,}")
                shot("settlement")
                reports.append(axe_check(page, "settlement", axe_source))

                page.goto(f"{explorer}#/accounts/{out['winner']}")
                expect(page.locator("#live-region")).to_contain_text("winner, miner", timeout=20_000)
                shot("account")
                reports.append(axe_check(page, "account", axe_source))

                page.goto(f"{explorer}#/orders?status=settled")
                expect(page.get_by_role("link", name=f"Order {oid}", exact=True)).to_be_visible(timeout=20_000)
                page.goto(f"{explorer}#/committee")
                expect(page.locator("#live-region")).to_contain_text("(this one)", timeout=20_000)
                reports.append(axe_check(page, "committee", axe_source))

                # keyboard: the skip link comes first and lands in the content; live updates pause
                page.goto(f"{explorer}#/")
                page.reload()   # a fresh load: focus starts at the top of the document
                expect(page.locator("#live-region table").first).to_be_visible(timeout=20_000)
                page.keyboard.press("Tab")
                expect(page.locator("#skip")).to_be_focused()
                page.keyboard.press("Enter")
                expect(page.locator("#main")).to_be_focused()
                page.locator("#live").focus()
                page.keyboard.press("Space")
                expect(page.locator("#live")).to_have_attribute("aria-pressed", "false")
                # the skip link's hashchange runs later than the browser's own focus move: by then the
                # reader may be elsewhere, and focus stays where they went (CI once lost this race)
                page.evaluate("() => { history.replaceState(null, '', '#/'); "
                              "document.getElementById('skip').click(); document.getElementById('live').focus(); }")
                page.wait_for_timeout(300)
                assert page.evaluate("() => document.activeElement.id") == "live"
                page.keyboard.press("Space")
                expect(page.locator("#live")).to_have_attribute("aria-pressed", "true")

                page.goto(f"{explorer}docs")
                expect(page.locator(".swagger-ui .info .title")).to_contain_text("PoT aggregator", timeout=20_000)
                expect(page.get_by_text("/v1/orders/{order_id}/outcome").first).to_be_visible()
                shot("docs")

                assert not foreign, f"the explorer reached outside its replica: {foreign}"
                assert not errors, errors
            finally:
                ctx.close()
        serious = [(r["page"], v["id"], v["impact"], v["help"]) for r in reports for v in r["violations"]
                   if v["impact"] in ("serious", "critical")]
        counts = {r["page"]: len(r["violations"]) for r in reports}
        print(f"axe-core violations by page (any impact): {counts}; reports in {ARTIFACTS}")
        assert not serious, serious
        print(f"explorer browser test: {time.monotonic() - t_start:.0f}s wall")
    finally:
        down = pot("devnet", "down", "--dir", str(root), "--timeout", "10")
        if (root / "logs").exists():   # the nodes' logs go with the screenshots
            shutil.copytree(root / "logs", ARTIFACTS / "logs", dirs_exist_ok=True)
        assert down.returncode == 0, down.stdout + down.stderr

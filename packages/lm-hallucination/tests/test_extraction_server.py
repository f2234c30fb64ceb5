"""The validation UI: token, escaping, decisions (Flask test client) and a real browser."""

import shutil
import threading

import pytest
from widelab_lm_hallucination.extraction import (
    Document,
    Schema,
    Store,
    Variable,
    labelling_function,
    run_extraction,
)
from widelab_lm_hallucination.extraction.server import TOKEN_HEADER, create_app

CITY = Variable("city", "category", categories=("Paris", "Lyon"), keywords=("born in",))
AGE = Variable("age", "number", keywords=("aged",))
SCHEMA = Schema((CITY, AGE))
EVIL = "<script>document.title='pwned'</script>"
DOCS = [
    Document("d1", f"Ann was born in Paris. {EVIL} Ann, aged 40, lives in Lyon."),
    Document("d2", "Bo was born in Lyon. Bo moved to Paris."),
]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "x.db"
    with Store(path, SCHEMA) as s:
        run_extraction(s, DOCS, {"keyword": labelling_function("keyword")}, progress=False)
    return path


def test_token_required_and_text_escaped(db):
    app = create_app(str(db), token="t0k")
    c = app.test_client()
    page = c.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert 'content="t0k"' in page.get_data(as_text=True)
    nxt = c.get("/api/next?policy=document").get_json()
    item = nxt["item"]
    assert (item["doc_id"], item["variable"]) == ("d1", "city")
    assert EVIL in item["text"]  # JSON carries it as data; the page inserts it as text
    cand = item["candidates"][0]
    body = {"doc_id": "d1", "variable": "city", "decision": "accept", "candidate_id": cand["id"]}
    assert c.post("/api/decide", json=body).status_code == 403
    assert c.post("/api/decide", json=body, headers={TOKEN_HEADER: "wrong"}).status_code == 403
    with Store(db) as s:
        assert s.validations() == []
    ok = c.post("/api/decide", json={**body, "seconds": 2.0}, headers={TOKEN_HEADER: "t0k"})
    assert ok.status_code == 200 and ok.get_json()["progress"]["resolved_items"] == 1
    bad = c.post(
        "/api/decide",
        json={**body, "decision": "value", "value": "Rome"},
        headers={TOKEN_HEADER: "t0k"},
    )
    assert bad.status_code == 400 and "not a valid city" in bad.get_json()["error"]
    assert c.get("/api/next?policy=nope").status_code == 400
    with Store(db) as s:
        (v,) = s.validations()
        assert (v.decision, v.value, v.seconds) == ("accept", "Paris", 2.0)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.integration
def test_validate_in_a_real_browser(db, tmp_path):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright: uv sync (it is in the dev group)"
    )
    exe = _chromium()
    if exe is None:
        pytest.skip("needs a Chromium browser: apt-get update && apt-get install -y chromium")
    from werkzeug.serving import make_server

    app = create_app(str(db), policy="document", who="browser")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=exe,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#variable:has-text('city')")
            # the document's <script> is shown as text and never runs
            assert EVIL in page.inner_text("#evidence")
            assert page.title() != "pwned"
            assert page.eval_on_selector_all("#evidence script", "els => els.length") == 0
            assert page.inner_text("mark.focused") == "Paris"
            page.keyboard.press("a")  # accept Paris for d1/city
            page.wait_for_selector("#variable:has-text('age')")
            page.wait_for_selector("#progress:has-text('1 / 4 items resolved')")
            assert page.inner_text("mark.focused") == "40"
            page.keyboard.press("r")  # reject 40 ...
            page.wait_for_selector("#candidates li.rejected")
            page.keyboard.press("e")  # ... and type the value
            page.keyboard.type("41")
            page.keyboard.press("Enter")
            page.wait_for_selector("#doc:has-text('d2')")
            page.click("#candidates li:has-text('Paris')")  # choose another candidate
            page.wait_for_selector("#progress:has-text('3 / 4 items resolved')")
            # the next item is on screen before its key is pressed (a loaded machine can
            # render the progress line before the item)
            page.wait_for_selector("#doc:has-text('d2')")
            page.wait_for_selector("#variable:has-text('age')")
            page.keyboard.press("n")  # d2/age is not stated
            page.wait_for_selector("#done:not([hidden])")
            # a request without the token is refused, from inside the page too
            status = page.evaluate(
                "fetch('/api/decide', {method: 'POST', headers: {'Content-Type': "
                "'application/json'}, body: JSON.stringify({doc_id: 'd1', variable: 'age', "
                "decision: 'none'})}).then(r => r.status)"
            )
            assert status == 403
            browser.close()
    finally:
        server.shutdown()
        thread.join(5)
    with Store(db) as s:
        got = {(v.doc_id, v.variable): (v.decision, v.value, v.who) for v in s.validations()}
        assert got[("d1", "city")] == ("accept", "Paris", "browser")
        assert got[("d1", "age")] == ("value", "41", "browser")
        assert got[("d2", "city")][:2] == ("other", "Paris")
        assert got[("d2", "age")][:2] == ("none", None)
        assert sum(v.decision == "reject" for v in s.validations()) == 1
        assert all(v.seconds > 0 for v in s.validations())
    from widelab_lm_hallucination.extraction import export

    with Store(db) as s:
        assert export(s, tmp_path / "out.csv") == 4

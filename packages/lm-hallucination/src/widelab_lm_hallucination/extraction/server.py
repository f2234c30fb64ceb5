"""The validation UI: a local Flask app over an extraction store.

``create_app(db)`` serves one page that shows the next open item (a document and a
variable) with its candidates, each candidate's evidence highlighted in context, in
the order of a policy (:func:`~.pipeline.queue`). Keyboard: ``a`` accept the focused
candidate, ``r`` reject it, ``1``-``9`` choose that candidate, ``e`` type a value,
``n`` the document does not state it, ``s`` skip. Each decision is stored with the
seconds it took.

Safety: the server binds to 127.0.0.1 by default; document text is only ever inserted
as text (never as HTML) and the page forbids inline scripts (Content-Security-Policy);
every state-changing request must carry the per-session token embedded in the page.
"""

from __future__ import annotations

import hmac
import secrets
import sys
import threading

from .pipeline import POLICIES, queue
from .store import Store, StoreError

TOKEN_HEADER = "X-Widelab-Token"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def create_app(
    db: str,
    *,
    policy: str = "confidence",
    threshold: float = 0.5,
    who: str = "validator",
    token: str | None = None,
):
    """Build the Flask app of the validation UI.

    Args:
        db: path of an extraction store (made by ``widelab lm extract run``).
        policy: default order of the items (one of :data:`~.pipeline.POLICIES`).
        threshold: confidence above which unchecked values count as extracted.
        who: validator name stored with each decision.
        token: the session token (default: a fresh random one, ``app.config["TOKEN"]``).

    Returns:
        A ``flask.Flask`` application.

    Raises:
        ValueError: unknown policy; StoreError: ``db`` is not an extraction store.
    """
    from flask import Flask, g, jsonify, render_template, request

    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    Store(db).close()  # fail now, not on the first request
    app = Flask(__name__, static_folder="static", template_folder="static")
    app.config["TOKEN"] = token or secrets.token_urlsafe(32)
    app.config["DB"] = str(db)

    def store() -> Store:
        if "store" not in g:
            g.store = Store(app.config["DB"])
        return g.store

    @app.teardown_appcontext
    def _close(_exc):
        s = g.pop("store", None)
        if s is not None:
            s.close()

    @app.after_request
    def _headers(resp):
        resp.headers["Content-Security-Policy"] = _CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def progress(s: Store) -> dict:
        e = s.effort()
        return {**e, "seconds_per_decision": e["seconds"] / e["decisions"] if e["decisions"] else 0}

    @app.get("/")
    def index():
        return render_template(
            "ui.html", token=app.config["TOKEN"], policy=policy, policies=POLICIES
        )

    @app.get("/api/next")
    def next_item():
        s = store()
        pol = request.args.get("policy", policy)
        if pol not in POLICIES:
            return jsonify(error=f"policy must be one of {list(POLICIES)}"), 400
        skip = set(request.args.get("skip", "").split(",")) - {""}
        for doc_id, var in queue(s, pol, threshold=threshold):
            if f"{doc_id}|{var}" in skip:
                continue
            return jsonify(item=_item(s, doc_id, var), progress=progress(s), policy=pol)
        return jsonify(item=None, progress=progress(s), policy=pol)

    @app.post("/api/decide")
    def decide():
        sent = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(sent.encode(), app.config["TOKEN"].encode()):
            return jsonify(error="missing or wrong session token"), 403
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify(error="the body must be a JSON object"), 400
        try:
            seconds = float(data.get("seconds", 0.0))
            v = store().validate(
                str(data.get("doc_id", "")),
                str(data.get("variable", "")),
                str(data.get("decision", "")),
                candidate_id=data.get("candidate_id"),
                value=data.get("value"),
                who=who,
                seconds=seconds,
            )
        except (StoreError, TypeError, ValueError) as e:
            return jsonify(error=str(e)), 400
        return jsonify(validation=v.id, progress=progress(store()))

    return app


def _item(s: Store, doc_id: str, variable: str) -> dict:
    doc = s.document(doc_id)
    var = s.schema[variable]
    rejected = s.rejected()
    cands = [
        {
            "id": sc.id,
            "value": sc.candidate.value,
            "confidence": sc.candidate.confidence,
            "function": sc.candidate.function,
            "start": sc.candidate.start,
            "end": sc.candidate.end,
            "context_start": sc.candidate.context_start,
            "context_end": sc.candidate.context_end,
            "rejected": sc.id in rejected,
        }
        for sc in s.candidates(doc_id, variable)
    ]
    return {
        "doc_id": doc_id,
        "variable": variable,
        "type": var.type,
        "questions": list(var.questions),
        "categories": list(var.categories),
        "text": doc.text,
        "candidates": cands,
    }


def serve(
    db: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    policy: str = "confidence",
    threshold: float = 0.5,
    who: str = "validator",
    ready: threading.Event | None = None,
) -> int:
    """Serve the UI with Flask's standard (werkzeug) server until Ctrl-C.

    Returns:
        0 after a clean stop.
    """
    from werkzeug.serving import make_server

    app = create_app(db, policy=policy, threshold=threshold, who=who)
    server = make_server(host, port, app, threaded=True)
    print(
        f"validation UI for {db} at http://{host}:{server.server_port}/  (Ctrl-C stops)",
        file=sys.stderr,
    )
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0

"use strict";
// Validation UI. Document text is only ever inserted with textContent / text nodes.
(function () {
  const token = document.querySelector('meta[name="widelab-token"]').content;
  const $ = (id) => document.getElementById(id);
  let item = null;
  let focus = 0;
  let shownAt = 0;
  const skipped = [];

  function open() {
    return item ? item.candidates.filter((c) => !c.rejected) : [];
  }

  async function load() {
    const params = new URLSearchParams({ policy: $("policy").value, skip: skipped.join(",") });
    const resp = await fetch("/api/next?" + params.toString());
    const data = await resp.json();
    if (!resp.ok) { $("error").textContent = data.error || "request failed"; return; }
    showProgress(data.progress);
    item = data.item;
    focus = 0;
    $("error").textContent = "";
    if (!item) { $("item").hidden = true; $("done").hidden = false; return; }
    $("done").hidden = true;
    $("item").hidden = false;
    render();
    shownAt = performance.now();
  }

  function showProgress(p) {
    $("progress").textContent = p.resolved_items + " / " + p.items + " items resolved · " +
      p.decisions + " decisions · " + p.seconds_per_decision.toFixed(1) + " s per decision";
    $("bar").max = Math.max(p.items, 1);
    $("bar").value = p.resolved_items;
  }

  function render() {
    $("variable").textContent = item.variable;
    $("doc").textContent = item.doc_id;
    $("vtype").textContent = item.type;
    $("question").textContent = item.questions.join(" ");
    const dl = $("categories");
    dl.replaceChildren();
    for (const c of item.categories) {
      const o = document.createElement("option");
      o.value = c;
      dl.appendChild(o);
    }
    const cands = open();
    const cur = cands[focus];
    // Evidence: the focused candidate's context window, its span highlighted.
    const ev = $("evidence");
    ev.replaceChildren();
    const text = item.text;
    if (cur && cur.start >= 0) {
      const a = cur.context_start, b = cur.context_end;
      if (a > 0) ev.appendChild(document.createTextNode("… "));
      ev.appendChild(document.createTextNode(text.slice(a, cur.start)));
      const m = document.createElement("mark");
      m.className = "focused";
      m.textContent = text.slice(cur.start, cur.end);
      ev.appendChild(m);
      ev.appendChild(document.createTextNode(text.slice(cur.end, b)));
      if (b < text.length) ev.appendChild(document.createTextNode(" …"));
    } else {
      ev.appendChild(document.createTextNode(text));
    }
    const ol = $("candidates");
    ol.replaceChildren();
    const rejected = item.candidates.filter((c) => c.rejected);
    cands.concat(rejected).forEach((c, i) => {
      const li = document.createElement("li");
      const where = c.start >= 0 ? "" : " (not found in the text)";
      const key = c.rejected ? "" : "[" + (i + 1) + "] ";
      li.textContent = key + c.value + "  (" + c.function + ", confidence " +
        c.confidence.toFixed(2) + ")" + where;
      if (c.rejected) li.className = "rejected";
      else if (cur && c.id === cur.id) li.className = "focused";
      li.dataset.id = String(c.id);
      li.addEventListener("click", () => { if (!c.rejected) act.choose(c); });
      ol.appendChild(li);
    });
    $("accept").disabled = !cur;
    $("reject").disabled = !cur;
    $("value").value = "";
  }

  async function decide(body) {
    const seconds = (performance.now() - shownAt) / 1000;
    const payload = Object.assign({ doc_id: item.doc_id, variable: item.variable, seconds }, body);
    const resp = await fetch("/api/decide", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Widelab-Token": token },
      body: JSON.stringify(payload),
    });
    const data = await resp.json();
    if (!resp.ok) { $("error").textContent = data.error || "request failed"; return false; }
    showProgress(data.progress);
    return true;
  }

  async function accept() {
    const cur = open()[focus];
    if (cur && await decide({ decision: "accept", candidate_id: cur.id })) await load();
  }

  async function reject() {
    const cur = open()[focus];
    if (!cur) return;
    if (await decide({ decision: "reject", candidate_id: cur.id })) {
      cur.rejected = true;
      focus = 0;
      shownAt = performance.now();
      render();
    }
  }

  async function choose(c) {
    const cur = open()[focus];
    const decision = cur && cur.id === c.id ? "accept" : "other";
    if (await decide({ decision, candidate_id: c.id })) await load();
  }

  async function none() {
    if (await decide({ decision: "none" })) await load();
  }

  async function skip() {
    skipped.push(item.doc_id + "|" + item.variable);
    await load();
  }

  async function value() {
    const v = $("value").value.trim();
    if (v && await decide({ decision: "value", value: v })) await load();
  }

  // One action at a time: until a decision is recorded and the next item is on screen,
  // further keys and clicks are ignored, so a quick second key never applies to the
  // item that was just decided.
  let busy = false;
  function once(fn) {
    return async (...args) => {
      if (busy) return;
      busy = true;
      try { await fn(...args); } finally { busy = false; }
    };
  }
  const act = {
    accept: once(accept), reject: once(reject), none: once(none), skip: once(skip),
    choose: once(choose), value: once(value),
  };

  $("accept").addEventListener("click", act.accept);
  $("reject").addEventListener("click", act.reject);
  $("none").addEventListener("click", act.none);
  $("skip").addEventListener("click", act.skip);
  $("policy").addEventListener("change", load);
  $("valueform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act.value();
  });
  document.addEventListener("keydown", (ev) => {
    if (!item || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === "a") { ev.preventDefault(); act.accept(); }
    else if (k === "r") { ev.preventDefault(); act.reject(); }
    else if (k === "n") { ev.preventDefault(); act.none(); }
    else if (k === "s") { ev.preventDefault(); act.skip(); }
    else if (k === "e") { ev.preventDefault(); $("value").focus(); }
    else if (/^[1-9]$/.test(k)) {
      const c = open()[Number(k) - 1];
      if (c) { ev.preventDefault(); act.choose(c); }
    }
  });
  load();
})();

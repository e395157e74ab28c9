/* mailmoat console: renders every page from the JSON API. Data is only ever inserted as text, never as HTML. */
"use strict";
(function () {
  const S = JSON.parse(document.getElementById("mm-strings").textContent);
  const P = JSON.parse(document.getElementById("mm-page").textContent);
  const API = "/api/v1";
  const T = (k) => (k in S ? S[k] : k);
  const $ = (id) => document.getElementById(id);
  const SVGNS = "http://www.w3.org/2000/svg";
  const SELECTORS = ["sender", "recipient", "subject", "message_id", "tracking_id", "url", "url_domain", "qr",
    "sha256", "symbol", "action", "direction", "since", "until"];
  const CAT_COLORS = { phishing: "#d9480f", spam: "#f59f00", malware: "#c2255c", qr: "#7048e8",
    impersonation: "#1c7ed6", internal: "#0ca678" };

  // -- small DOM helpers --------------------------------------------------------------------
  // Direction controls in mail's text (U+202E in "invoice\u202Efdp.exe" shows "invoiceexe.pdf")
  // are shown as what they are, never obeyed: an analyst must see the name the attacker wrote.
  const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  const bidiShown = (v) => String(v).replace(BIDI, (c) => `\u27E8U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}\u27E9`);
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = bidiShown(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      if (Array.isArray(kid)) append(el, kid);
      else el.append(kid instanceof Node ? kid : document.createTextNode(bidiShown(kid)));
    }
  }
  function fill(target, ...kids) {
    const el = typeof target === "string" ? $(target) : target;
    if (!el) return null;
    el.replaceChildren();
    append(el, kids);
    return el;
  }
  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, String(v));
    }
    for (const kid of kids) if (kid) el.append(kid);
    return el;
  }
  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...rest] = part.trim().split("=");
      if (k === name) return decodeURIComponent(rest.join("="));
    }
    return "";
  }
  function fmtTime(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function fmtSize(n) {
    if (n === null || n === undefined) return "";
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1048576).toFixed(1)} MB`;
  }
  const badge = (text, kind) => h("span", { class: `badge ${kind || ""}`, text });
  const actionBadge = (a) => badge(a || "", `act-${a}`);
  const stateBadge = (s) => badge(s || "", `st-${s}`);
  const mono = (text) => h("span", { class: "mono", text: text || "" });

  function detailText(data) {
    if (!data) return "";
    const d = data.detail !== undefined ? data.detail : data;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e && e.msg ? `${(e.loc || []).join(".")}: ${e.msg}` : JSON.stringify(e))).join("; ");
    if (d && Array.isArray(d.problems)) return d.problems.join("; ");
    return JSON.stringify(d);
  }
  function flash(message, kind) {
    const el = $("flash");
    if (!el) return;
    el.className = `flash ${kind || "ok"}`;
    el.textContent = message;
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 12000 : 5000);
  }
  function toLogin() {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    let payload;
    if (body instanceof FormData) payload = body;
    else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    if (method !== "GET") headers["X-CSRF-Token"] = cookie("mm_csrf");
    const r = await fetch(API + path, { method, headers, body: payload, credentials: "same-origin" });
    let data = null;
    if ((r.headers.get("content-type") || "").includes("json")) data = await r.json();
    if (r.status === 401 && P.page !== "login") {
      toLogin();
      throw new Error(detailText(data) || "401");
    }
    if (!r.ok) {
      const err = new Error(detailText(data) || `${r.status} ${r.statusText}`);
      err.status = r.status;
      throw err;
    }
    return data;
  }
  // Runs an action, reports failure in the flash bar, and tells the caller whether it worked.
  async function attempt(fn, okText) {
    try {
      const out = await fn();
      if (okText) flash(okText, "ok");
      return out === undefined ? true : out;
    } catch (e) {
      flash(`${T("common.error")}: ${e.message}`, "error");
      return null;
    }
  }

  function table(columns, rows, opts) {
    if (!rows || !rows.length) return h("p", { class: "muted empty", text: T("common.none") });
    const o = opts || {};
    return h("div", { class: "table-wrap" },
      h("table", { class: `grid ${o.cls || ""}`, id: o.id },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.cls, text: c.label })))),
        h("tbody", {}, rows.map((r) => {
          const tr = h("tr", o.rowAttrs ? o.rowAttrs(r) : {});
          for (const c of columns) {
            const v = c.render ? c.render(r) : r[c.key];
            tr.append(h("td", { class: c.cls }, v === null || v === undefined ? "" : v));
          }
          return tr;
        }))));
  }
  function kv(pairs) {
    return h("dl", { class: "kv" }, pairs.filter((p) => p[1] !== "" && p[1] !== null && p[1] !== undefined)
      .map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
  }
  function pager(el, total, limit, offset, go) {
    fill(el,
      h("span", { class: "muted", text: `${total} ${T("common.total")}` }),
      offset > 0 ? h("button", { type: "button", onclick: () => go(Math.max(0, offset - limit)), text: T("common.prev") }) : null,
      offset + limit < total ? h("button", { type: "button", onclick: () => go(offset + limit), text: T("common.next") }) : null);
  }
  function formObject(form) {
    const out = {};
    for (const [k, v] of new FormData(form).entries()) if (typeof v === "string" && v.trim()) out[k] = v.trim();
    return out;
  }

  // -- charts (inline SVG) ----------------------------------------------------------------
  function barChart(days, series, opts) {
    const W = 640, H = 220, L = 36, B = 28, TOP = 10, R = 8;
    const n = days.length;
    const totals = days.map((d) => series.reduce((s, k) => s + (d[k.key] || 0), 0));
    const max = Math.max(1, ...totals, ...(opts.overlay ? days.map((d) => d[opts.overlay.key] || 0) : []));
    const step = (W - L - R) / n;
    const bw = Math.max(2, step * 0.7);
    const y = (v) => TOP + (H - TOP - B) * (1 - v / max);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "svgchart", role: "img", "aria-label": opts.label });
    const nice = max <= 4 ? 1 : Math.ceil(max / 4);
    for (let v = 0; v <= max; v += nice) {
      chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }));
      chart.append(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end", text: v }));
    }
    days.forEach((d, i) => {
      const x = L + i * step + (step - bw) / 2;
      let acc = 0;
      for (const s of series) {
        const v = d[s.key] || 0;
        if (!v) continue;
        const rect = svg("rect", { x, y: y(acc + v), width: bw, height: y(acc) - y(acc + v), fill: s.color, rx: 1 });
        rect.append(svg("title", { text: `${d.day} · ${s.label}: ${v}` }));
        chart.append(rect);
        acc += v;
      }
      if (opts.overlay && d[opts.overlay.key]) {
        const v = d[opts.overlay.key];
        const ov = svg("rect", { x: x + bw * 0.25, y: y(v), width: bw * 0.5, height: y(0) - y(v), fill: opts.overlay.color });
        ov.append(svg("title", { text: `${d.day} · ${opts.overlay.label}: ${v}` }));
        chart.append(ov);
      }
      if (n <= 16 || i % Math.ceil(n / 14) === 0) {
        chart.append(svg("text", { x: x + bw / 2, y: H - 10, class: "axis", "text-anchor": "middle", text: d.day.slice(5) }));
      }
    });
    const legend = h("div", { class: "legend" },
      [...series, ...(opts.overlay ? [opts.overlay] : [])].map((s) =>
        h("span", {}, h("i", { style: `background:${s.color}` }), `${s.label}${s.total !== undefined ? ` (${s.total})` : ""}`)));
    return [chart, legend];
  }

  // -- pages ------------------------------------------------------------------------------
  const pages = {};

  pages.login = function () {
    const form = $("login-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const err = $("login-error");
      err.hidden = true;
      const r = await fetch(API + "/auth/login", {
        method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ username: $("username").value, password: $("password").value }), credentials: "same-origin",
      });
      if (r.ok) {
        // Resolved as the browser will (it drops tabs and line breaks): only this site's pages.
        const next = new URL(form.dataset.next || "/", location.origin);
        location.href = next.origin === location.origin ? next.pathname + next.search + next.hash : "/";
        return;
      }
      err.textContent = r.status === 429 ? T("login.limited") : T("login.failed");
      err.hidden = false;
    });
  };

  // A fresh install has no model: say so where the administrator looks first, with the command.
  function classifierState(c) {
    if (!c.enabled) return h("p", { class: "card warn", id: "classifier-note", text: T("clf.off") });
    if (c.error) return h("p", { class: "card error", id: "classifier-note", text: `${T("clf.damaged")} ${c.error}` });
    // Recalled campaigns are held as near copies even before a model exists.
    const near = c.near_copies ? h("span", { id: "near-copies", text: ` ${T("clf.near_pre")} ${c.near_copies} ${T("clf.near_post")}` }) : null;
    if (!c.trained) {
      return h("p", { class: "card warn", id: "classifier-note" }, `${T("clf.none")} `,
        h("code", { text: "mailmoat train --ham DIR --spam DIR --phish DIR" }), near);
    }
    const m = c.messages;
    const learnt = m ? `${m.ham} ${T("clf.ham")}, ${m.spam} ${T("clf.spam")}, ${m.phish} ${T("clf.phish")}` : T("clf.legacy");
    const every = c.learn_every_hours > 0 ? ` · ${T("clf.every_pre")} ${c.learn_every_hours} ${T("clf.every_post")}` : "";
    const state = h("p", { class: "muted", id: "classifier-state" },
      `${T("clf.model")}: ${learnt} · ${T("clf.saved")} ${fmtTime(c.saved_at)}${every}`, near);
    // A language seen only in spam reads as spam in every message: the model holds its legitimate mail.
    const langs = c.spam_only_languages || [];
    if (!langs.length) return state;
    return [state, h("p", { class: "card warn", id: "classifier-languages", text: `${T("clf.lang_only_spam")} ${langs.join(", ")}` })];
  }

  // What `mailmoat status` flags (the gateway's own thresholds), worded in the console's language.
  function attentionNotes(st) {
    const fmt = (s, vals) => s.replace(/\{(\w+)\}/g, (_, k) => String(vals[k] ?? ""));
    const min = (sec) => Math.round((sec || 0) / 60);
    const pick = (n, one, many) => (n === 1 ? one : many);  // "1 copy waits", "2 copies wait"
    const count = (n, one, many) => fmt(pick(n, one, many), { n });
    const words = {
      spool_stale: () => fmt(T("attn.spool_stale"), { min: min(st.spool_oldest_age) }),
      queue_deferred: () => fmt(pick((st.queue || {}).deferred, T("attn.queue_deferred_one"), T("attn.queue_deferred")),
        { n: (st.queue || {}).deferred, min: min(st.queue_oldest_age), reply: st.queue_last_reply || "-" }),
      incidents_open: () => count(st.open_incidents, T("attn.incidents_open_one"), T("attn.incidents_open")),
      recalls_stale: () => count(st.recalls_stale, T("attn.recalls_stale_one"), T("attn.recalls_stale")),
      release_requests: () => count(st.release_requests, T("attn.release_requests_one"), T("attn.release_requests")),
      reports_open: () => count(st.reports_open, T("attn.reports_open_one"), T("attn.reports_open")),
      disk_low: () => fmt(T("attn.disk_low"),
        { gib: ((st.disk_free_bytes || 0) / 2 ** 30).toFixed(1), pct: Math.round((st.disk_free_fraction || 0) * 100) }),
    };
    return (st.attention || []).map((a) => h("p", {
      class: "card warn attention", dataset: { kind: a.kind }, text: words[a.kind] ? words[a.kind]() : a.text,
    }));
  }

  pages.dashboard = async function () {
    const stats = await api("GET", "/stats?days=14&top=8");
    const tot = stats.totals;
    fill("tiles",
      h("div", { class: "tile" }, h("b", { text: tot.messages }), h("span", { text: T("dash.total_messages") })),
      h("div", { class: "tile threat" }, h("b", { text: tot.threats }), h("span", { text: T("dash.total_threats") })),
      stats.categories.map((c) => h("div", { class: "tile cat" }, h("b", { text: tot[c], style: `color:${CAT_COLORS[c]}` }),
        h("span", { text: T("cat." + c) }))));
    const clean = stats.days.map((d) => ({ day: d.day, clean: d.total - d.threats, threats: d.threats }));
    fill("chart-volume", barChart(clean, [
      { key: "clean", label: T("dash.total_messages").split(" (")[0].split("（")[0], color: "#74c0fc" },
      { key: "threats", label: T("col.threats"), color: "#e03131" },
    ], { label: T("dash.volume") }));
    fill("chart-threats", barChart(stats.days, stats.categories.map((c) => ({
      key: c, label: T("cat." + c), color: CAT_COLORS[c], total: tot[c],
    })), { label: T("dash.threats") }));
    fill("top-recipients", table([
      { label: T("col.recipient"), render: (r) => h("a", { href: "/messages?recipient=" + encodeURIComponent(r.recipient), text: r.recipient }) },
      { label: T("col.threats"), key: "threats", cls: "num" },
    ], stats.top_targeted_recipients));
    fill("top-senders", table([
      { label: T("col.domain"), render: (r) => h("a", { href: "/messages?sender=" + encodeURIComponent(r.domain), text: r.domain }) },
      { label: T("col.messages"), key: "messages", cls: "num" },
      { label: T("col.threats"), key: "threats", cls: "num" },
    ], stats.top_sender_domains));
    // A wave's link opens the mail that led there (the url_domain selector also matches one host or one page).
    fill("waves", table([
      { label: T("col.domain"), render: (w) => h("a", { href: "/messages?url_domain=" + encodeURIComponent(w.domain), text: w.domain }) },
      { label: T("col.messages"), key: "messages", cls: "num" },
      { label: T("col.senders"), key: "senders", cls: "num" },
      { label: T("col.held"), key: "held", cls: "num" },
      { label: T("col.lastseen"), render: (w) => h("span", { class: "nowrap", text: fmtTime(w.last_seen) }) },
    ], stats.waves || [], { id: "waves-table", rowAttrs: (w) => ({ dataset: { domain: w.domain } }) }));
    api("GET", "/status").then((st) => fill("attention", attentionNotes(st)))
      .catch((e) => fill("attention", h("p", { class: "error", text: e.message })));
    api("GET", "/classifier").then((c) => fill("classifier", classifierState(c)))
      .catch((e) => fill("classifier", h("p", { class: "error", text: e.message })));
    api("GET", "/incidents?limit=5").then((inc) => fill("recent-incidents", incidentTable(inc.items || [])))
      .catch((e) => fill("recent-incidents", h("p", { class: "error", text: e.message })));
    api("GET", "/recall/jobs?limit=5").then((jobs) => fill("recent-recalls", jobTable(jobs.items, true)))
      .catch((e) => fill("recent-recalls", h("p", { class: "error", text: e.message })));
  };

  function messageTable(items) {
    return table([
      { label: T("col.received"), render: (m) => h("span", { class: "nowrap", text: fmtTime(m.received_at) }) },
      { label: T("col.from"), render: (m) => h("span", { class: "ellipsis", title: m.from_addr || m.mail_from, text: m.from_display ? `${m.from_display} <${m.from_addr}>` : m.from_addr || m.mail_from }) },
      { label: T("col.to"), render: (m) => h("span", { class: "ellipsis", text: (m.rcpt_tos || []).join(", ") }) },
      { label: T("col.subject"), render: (m) => h("a", { href: "/messages/" + encodeURIComponent(m.id), class: "msg-link", text: m.subject || "(no subject)" }) },
      { label: T("col.action"), render: (m) => actionBadge(m.action) },
      { label: T("col.score"), render: (m) => (m.score || 0).toFixed(1), cls: "num" },
      { label: T("col.status"), render: (m) => stateBadge(m.partly_released ? "partly released" : m.status) },
    ], items, { id: "message-table", rowAttrs: (m) => ({ dataset: { id: m.id } }) });
  }

  pages.messages = async function () {
    const form = $("search-form");
    const qs = new URLSearchParams(location.search);
    for (const [k, v] of qs.entries()) if (form.elements[k]) form.elements[k].value = v;
    let seq = 0;
    const run = async (offset) => {
      const mine = ++seq;  // a slower earlier search must not overwrite a newer one
      const q = new URLSearchParams(formObject(form));
      history.replaceState(null, "", "/messages" + (q.toString() ? "?" + q : ""));
      q.set("limit", "50");
      q.set("offset", String(offset));
      fill("results", h("p", { class: "muted", text: T("common.loading") }));
      try {
        const res = await api("GET", "/messages?" + q);
        if (mine !== seq) return;
        fill("results", messageTable(res.items));
        pager($("pager"), res.total, res.limit, res.offset, run);
      } catch (e) {
        if (mine === seq) fill("results", h("p", { class: "error", text: e.message }));
      }
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); run(0); });
    form.addEventListener("reset", () => setTimeout(() => run(0), 0));
    const recall = $("recall-search");
    if (recall) recall.addEventListener("click", () => {
      const sel = formObject(form);
      delete sel.status;
      if (!Object.keys(sel).length) { flash(T("recall.nothing"), "error"); return; }
      location.href = "/recall?" + new URLSearchParams(sel);
    });
    await run(0);
  };

  function foundIn(q, partsByPath) {
    // How the viewer reached the code: HTML <img src="cid:…"> → the MIME part (its name and true type).
    const chain = [];
    if (q.content_id) {
      chain.push(h("code", { text: `<img src="cid:${q.content_id}">` }));
      chain.push(h("span", { class: "arrow", text: " → " }));
    }
    const part = partsByPath[q.part_path];
    const desc = [`part ${q.part_path || "?"}`];
    if (q.filename) desc.push(`“${q.filename}”`);
    if (part) desc.push(`${part.declared_type}${part.true_type && part.true_type !== part.declared_type ? ` → ${part.true_type}` : ""}`);
    if (part && part.disposition) desc.push(part.disposition);
    chain.push(h("span", { text: desc.join(", ") }));
    return h("div", { class: "cid-chain" },
      h("div", {}, badge(q.source || "", "src"), q.referenced_by_cid ? badge(T("detail.cid_chain"), "cid") : null),
      h("div", {}, chain));
  }

  pages.message = async function () {
    const id = P.mail_id;
    const m = await api("GET", "/messages/" + encodeURIComponent(id));
    document.title = `${m.subject || id} · mailmoat`;
    fill("msg-subject", m.subject || "(no subject)");
    const sender = m.from_addr || m.mail_from;
    for (const list of ["deny", "allow"]) {
      const button = $(`${list}-sender`);
      if (!button || !sender) continue;
      button.hidden = false;
      // onclick, not addEventListener: the page is drawn again after a release or a decline.
      button.onclick = async () => {
        if (!window.confirm(`${T(`detail.${list}_sender`)}: ${sender}?`)) return;
        const body = { kind: "sender", value: sender, note: `${T("detail.title")} ${id}` };
        await attempt(() => api("POST", `/lists/${list}`, body), `${T("lists.added")}: ${T(`lists.${list}`)} ${sender}`);
      };
    }
    const unmark = $("uncondemn-message");
    if (unmark && m.verdict.status === "condemned") {
      unmark.hidden = false;
      unmark.onclick = async () => {
        if (!window.confirm(`${T("detail.uncondemn")}: ${m.subject || id}?`)) return;
        const out = await attempt(() => api("POST", `/messages/${encodeURIComponent(id)}/uncondemn`, {}), T("detail.uncondemned"));
        if (!out) return;
        if ((out.recall_jobs || []).length) flash(`${T("detail.still_recalled")} ${out.recall_jobs.join(", ")}`, "ok");
        unmark.hidden = true;
        fill("msg-status", stateBadge(out.status));
      };
    }
    fill("verdict", kv([
      [T("col.action"), actionBadge(m.verdict.action)],
      [T("col.score"), h("b", { text: (m.verdict.score || 0).toFixed(1) })],
      [T("col.status"), h("span", { id: "msg-status" }, stateBadge(m.partly_released ? "partly released" : m.verdict.status))],
      [T("detail.reasons"), h("ul", { class: "reasons" }, (m.verdict.reasons || []).map((r) => h("li", { text: r })))],
      ...((m.reports || []).length ? [[T("detail.reported_by"), h("span", { id: "reported-by" },
        [...new Set(m.reports.map((r) => r.reporter))].join(", "))]] : []),
    ]));
    const env = m.envelope;
    fill("envelope", kv([
      [T("col.received"), fmtTime(env.received_at)],
      [T("detail.mail_from"), mono(env.mail_from)],
      [T("detail.rcpts"), mono((env.rcpt_tos || []).join(", "))],
      [T("col.from"), mono(m.from_display ? `${m.from_display} <${m.from_addr}>` : m.from_addr)],
      [T("detail.peer"), mono(env.peer_ip)],
      [T("detail.helo"), mono(env.helo)],
      [T("col.direction"), env.direction],
      [T("detail.auth_user"), env.auth_user],
      [T("col.size"), fmtSize(env.size)],
      ["Message-ID", mono(m.message_id)],
    ]));
    const partsByPath = {};
    for (const a of m.attachments || []) partsByPath[a.part_path] = a;
    const qrs = m.qr_codes || [];
    if (!qrs.length) $("qr-section").hidden = true;
    fill("qr-codes", table([
      { label: T("col.payload"), render: (q) => h("code", { class: "qr-payload payload", text: q.payload }) },
      { label: T("col.foundin"), render: (q) => foundIn(q, partsByPath) },
      { label: T("col.evidence"), render: (q) => h("ul", { class: "evidence" }, [...new Set(q.evidence || [])].map((e) => h("li", { text: e }))) },
    ], qrs, { id: "qr-table" }));
    const findings = [...(m.findings || [])].sort((a, b) => (b.score || 0) - (a.score || 0));
    fill("findings", table([
      { label: T("col.symbol"), render: (f) => h("span", { class: "mono sym", text: f.symbol }) },
      { label: T("col.score"), render: (f) => h("span", { class: (f.score || 0) > 0 ? "pos" : (f.score || 0) < 0 ? "neg" : "", text: (f.score || 0).toFixed(1) }), cls: "num" },
      { label: T("col.group"), key: "group" },
      { label: T("col.evidence"), render: (f) => h("span", { class: "evidence-text", text: f.evidence }) },
      { label: T("col.source"), key: "source" },
    ], findings, { id: "findings-table", rowAttrs: (f) => ({ dataset: { symbol: f.symbol } }) }));
    fill("urls", table([
      { label: T("col.url"), render: (u) => h("span", { class: "mono url", text: u.url }) },
      { label: T("col.source"), render: (u) => badge(u.source, u.source === "qr" ? "cid" : "src") },
      { label: T("col.domain"), key: "registrable_domain" },
    ], m.urls));
    fill("attachments", table([
      { label: "part", key: "part_path", cls: "mono" },
      { label: T("col.filename"), key: "filename" },
      { label: T("col.declared"), key: "declared_type", cls: "mono" },
      { label: T("col.truetype"), render: (a) => [mono(a.true_type), a.type_mismatch ? badge(T("detail.mismatch"), "warn") : null] },
      { label: "cid", key: "content_id", cls: "mono" },
      { label: T("col.size"), render: (a) => fmtSize(a.size), cls: "num" },
      { label: "SHA-256", render: (a) => h("span", { class: "mono", title: a.sha256, text: (a.sha256 || "").slice(0, 12) }) },
    ], m.attachments));
    const docs = m.documents || [];
    if (!docs.length) $("documents-section").hidden = true;
    fill("documents", docs.map((d) => h("div", { class: "document", dataset: { part: d.part_path } },
      h("div", {},
        h("b", { text: d.filename || `part ${d.part_path}` }), " ", badge(d.kind, "src"),
        d.locked ? badge(T("detail.locked"), "warn") : null,
        d.locked ? h("span", { class: "muted", text: " " + T(d.opened ? "detail.opened" : "detail.not_opened") }) : null),
      // text only: a document's words are never parsed as markup
      d.text ? h("pre", { class: "preview document-text", text: d.text + (d.truncated ? "\n" + T("detail.truncated") : "") }) : null)));
    const copyCols = [
      { label: T("col.recipient"), key: "recipient" },
      { label: T("col.tracking"), key: "tracking_id", cls: "mono" },
      { label: T("col.mailbox"), key: "mailbox" },
      { label: T("col.status"), render: (d) => stateBadge(d.status) },
      { label: T("common.time"), render: (d) => fmtTime(d.delivered_at || d.updated_at) },
    ];
    // What recall jobs did to each copy: the latest job's word, linked to the job.
    const lastRecall = {};
    for (const r of m.recalls || []) lastRecall[r.tracking_id] = r;
    if (Object.keys(lastRecall).length) copyCols.push({ label: T("detail.recall_col"), render: (d) => {
      const r = lastRecall[d.tracking_id];
      if (!r) return "";
      return h("span", { class: "copy-recall", dataset: { state: r.state } }, stateBadge(r.state), " ",
        h("a", { href: "/recall/" + encodeURIComponent(r.job_id), class: "mono", text: r.job_id.slice(0, 10) + "…" }), " ",
        h("span", { class: "small muted", text: r.trigger }));
    } });
    // A recipient who asked for their copy from a digest, and is waiting for a decision.
    const asked = {};
    for (const r of m.release_requests || []) if (r.state === "open") asked[r.recipient] = r;
    if (Object.keys(asked).length) copyCols.push({ label: T("q.requests"), render: (d) => {
      const r = asked[(d.recipient || "").toLowerCase()];
      if (!r || d.status !== "held") return "";
      return h("span", { class: "release-request" }, badge(T("q.requested"), "warn"), " ", fmtTime(r.requested_at), " ",
        P.canAct ? h("button", { type: "button", class: "small decline-request", text: T("q.decline"), onclick: async () => {
          const reason = window.prompt(T("q.decline_reason"), "");  // told to the recipient (digest.tell_declines)
          if (reason === null) return;
          const out = await attempt(() => api("POST", `/quarantine/requests/${r.id}/decline`, { reason }), T("q.declined"));
          if (out) { if (out.told) flash(`${T("q.declined")}: ${T("q.told")} ${r.recipient}`, "ok"); pages.message(); }
        } }) : null);
    } });
    // One held copy at a time: to the person who vouches for it, the others stay held.
    if (P.canAct && m.verdict.status === "quarantined") copyCols.push({ label: "", render: (d) => d.status !== "held" ? "" :
      h("button", { type: "button", class: "small release-copy", text: T("q.release_copy"), onclick: async () => {
        const body = { recipients: [d.recipient], reason: "" };
        if (await attempt(() => api("POST", `/quarantine/${encodeURIComponent(m.id)}/release`, body), T("q.released"))) pages.message();
      } }) });
    fill("deliveries", table(copyCols, m.deliveries, { id: "copies-table", rowAttrs: (d) => ({ dataset: { recipient: d.recipient } }) }));
    fill("headers", table([
      { label: T("col.name"), render: (x) => mono(x[0]) },
      { label: T("col.value"), render: (x) => h("span", { class: "mono wrap", text: x[1] }) },
    ], m.headers));
    try {
      const pv = await api("GET", "/messages/" + encodeURIComponent(id) + "/preview");
      $("preview").textContent = pv.text;  // text only: the body is never parsed as markup
    } catch (e) {
      $("preview").textContent = e.status === 410 ? T("detail.not_retained") : e.message;
    }
  };

  pages.quarantine = async function () {
    const load = async (offset) => {
      const res = await api("GET", `/quarantine?limit=50&offset=${offset}`);
      const cols = [
        { label: T("col.received"), render: (m) => fmtTime(m.received_at) },
        { label: T("col.from"), render: (m) => m.from_addr || m.mail_from },
        { label: T("col.to"), render: (m) => (m.rcpt_tos || []).join(", ") },
        { label: T("col.subject"), render: (m) => h("a", { href: "/messages/" + encodeURIComponent(m.id), text: m.subject || "(no subject)" }) },
        { label: T("col.score"), render: (m) => (m.score || 0).toFixed(1), cls: "num" },
        // Why it was held, at a glance: its three strongest signs (the message's page has the evidence).
        { label: T("q.why"), render: (m) => h("span", { class: "why-held small" }, Object.entries(m.symbols || {})
          .filter(([, score]) => score > 0).sort((a, b) => b[1] - a[1]).slice(0, 3)
          .map(([sym, score]) => h("div", { class: "mono", text: `${sym} ${+score.toFixed(1)}` }))) },
        { label: T("col.status"), render: (m) => [stateBadge(m.partly_released ? "partly released" : m.status),
          (m.requested_by || []).length ? h("span", { class: "release-requested", title: `${T("q.requested_by")}: ${m.requested_by.join(", ")}` },
            " ", badge(T("q.requested"), "warn")) : null] },
      ];
      if (P.canAct) cols.push({ label: "", render: (m) => h("div", { class: "row-actions" },
        h("button", { type: "button", class: "primary small", text: T("q.release"), onclick: async () => {
          // Releasing hands held mail (perhaps phishing) to every recipient: never on one stray click.
          if (!window.confirm(`${T("q.release")}: ${m.subject || "(no subject)"} → ${(m.rcpt_tos || []).join(", ")}?`)) return;
          if (await attempt(() => api("POST", `/quarantine/${encodeURIComponent(m.id)}/release`, {}), T("q.released"))) load(offset);
        } }),
        h("button", { type: "button", class: "danger small", text: T("q.delete"), onclick: async () => {
          if (!window.confirm(`${T("q.delete")}: ${m.subject}?`)) return;
          if (await attempt(() => api("POST", `/quarantine/${encodeURIComponent(m.id)}/delete`, {}), T("q.deleted"))) load(offset);
        } }),
        h("a", { class: "button small", href: `${API}/quarantine/${encodeURIComponent(m.id)}/raw`, download: `${m.id}.eml`, text: T("q.download") })) });
      fill("quarantine", table(cols, res.items, { id: "quarantine-table" }));
      pager($("pager"), res.total, res.limit, res.offset, load);
    };
    await load(0);
  };

  function jobTable(items, compact) {
    const cols = [
      { label: "", render: (j) => h("a", { href: "/recall/" + encodeURIComponent(j.id), class: "mono", text: compact ? j.id.slice(0, 10) + "…" : j.id }) },
      { label: T("col.state"), render: (j) => stateBadge(j.running && j.state !== "running" ? "running" : j.state) },
      { label: T("col.copies"), render: (j) => h("span", {}, Object.entries(j.counts || {}).map(([k, v]) => h("span", { class: "nowrap" }, stateBadge(k), `${v} `))) },
    ];
    if (!compact) cols.push({ label: T("col.by"), key: "created_by" }, { label: T("common.reason"), key: "reason" });
    cols.push({ label: T("col.created"), render: (j) => h("span", { class: "nowrap", text: fmtTime(j.created_at) }) });
    return table(cols, items, { id: compact ? null : "jobs-table" });
  }

  pages.recall = async function () {
    const qs = new URLSearchParams(location.search);
    let req = null;
    let label = "";
    if (qs.get("mail_id")) {
      req = { mail_id: qs.get("mail_id") };
      label = `${T("recall.from_message")} ${qs.get("mail_id")}`;
    } else {
      const sel = {};
      for (const k of SELECTORS) if (qs.get(k)) sel[k] = qs.get(k);
      if (Object.keys(sel).length) {
        req = { selector: sel };
        label = `${T("recall.selection")}: ` + Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(", ");
      }
    }
    const jobs = api("GET", "/recall/jobs?limit=50").then((r) => fill("jobs", jobTable(r.items)));
    if (req && P.canAct) {
      $("new-recall").hidden = false;
      $("recall-how").hidden = true;
      fill("recall-selection", label);
      try {
        const pv = await api("POST", "/recall/preview", req);
        fill("recall-preview",
          h("p", { class: "affected" }, `${T("recall.affected")}: `, h("b", { id: "pv-messages", text: pv.messages }), ` ${T("recall.messages")}, `,
            h("b", { id: "pv-copies", text: pv.copies }), ` ${T("recall.copies")}`),
          pv.copies ? kv([
            [T("recall.mailboxes"), h("ul", { id: "pv-mailboxes", class: "chips" }, pv.mailboxes.map((x) => h("li", { text: x })))],
            [T("recall.subjects"), h("ul", { class: "plain" }, pv.subjects.map((x) => h("li", { text: x })))],
          ]) : h("p", { class: "muted", text: T("recall.nothing") }));
        const form = $("recall-form");
        form.hidden = !pv.copies;
        form.addEventListener("submit", async (ev) => {
          ev.preventDefault();
          $("recall-confirm").disabled = true;
          const job = await attempt(() => api("POST", "/recall/jobs", { ...req, reason: $("recall-reason").value, run: true }));
          if (job) location.href = "/recall/" + encodeURIComponent(job.id);
          else $("recall-confirm").disabled = false;
        });
      } catch (e) {
        fill("recall-preview", h("p", { class: "error", text: e.message }));
      }
    }
    await jobs;
  };

  const QUIET = new Set(["planned", "awaiting_approval", "done", "failed", "restored"]);
  const RESTORABLE = new Set(["recalled", "already_gone"]);

  pages.recall_job = async function () {
    const id = P.job_id;
    const path = "/recall/jobs/" + encodeURIComponent(id);
    let timer = null;
    const restore = async (ids) => {
      const st = await attempt(() => api("POST", path + "/restore", { tracking_ids: ids }), T("recall.restored"));
      if (st && (st.follow_up_restored || []).length) flash(`${T("recall.restored")}; ${T("recall.follow_up_restored")} ${st.follow_up_restored.join(", ")}`, "ok");
      // The follow-up's messages are judged again in the background: followed until done.
      if (st && !render(st)) timer = setTimeout(poll, 700);
    };
    const render = (st) => {
      const copies = st.copies || [];
      const settled = copies.filter((c) => c.state !== "pending").length;
      const quiet = QUIET.has(st.state) && !st.running;
      // Restored and still running: the job is done; its follow-up's messages are being judged again.
      const rejudging = st.running && st.state === "restored";
      const shown = st.running && QUIET.has(st.state) && !rejudging ? "running" : st.state;
      const stateEl = fill("job-state", stateBadge(shown));
      stateEl.dataset.state = shown;
      document.body.dataset.jobState = shown;
      fill("job-summary", ` ${settled} / ${copies.length} ${T("recall.copies")}`);
      $("job-bar").style.width = `${copies.length ? Math.round((100 * settled) / copies.length) : 100}%`;
      $("job-bar").className = `bar ${st.state}`;
      fill("job-counts", Object.entries(st.counts || {}).map(([k, v]) => h("span", { class: "count" }, stateBadge(k), ` ${v}`)));
      fill("job-meta", `${T("col.by")}: ${st.created_by} · ${T("col.created")}: ${fmtTime(st.created_at)}` +
        (st.finished_at ? ` · ${T("recall.finished")}: ${fmtTime(st.finished_at)}` : "") +
        (st.reason ? ` · ${T("common.reason")}: ${st.reason}` : "") + ` · ${st.backend}/${st.mode}`);
      // The rest of the campaign its follow-up recalled (each message a job of its own).
      if (st.follow_ups) fill("job-follow-ups", st.follow_ups.length ? [`${T("recall.follow_ups")}: `,
        ...st.follow_ups.map((j) => h("a", { href: "/recall/" + encodeURIComponent(j.id), class: "mono follow-up", dataset: { state: j.state },
          text: `${j.id.slice(0, 10)}… (${j.state}) ` })), rejudging ? h("span", { id: "rejudging", class: "muted", text: ` · ${T("recall.rejudging")}…` }) : ""] : "");
      const acts = [];
      if (P.canAct && quiet && st.state === "planned") acts.push(h("button", { type: "button", class: "danger", id: "job-run", text: T("recall.run"), onclick: async () => {
        if (await attempt(() => api("POST", path + "/run", {}))) poll();
      } }));
      if (P.isAdmin && st.state === "awaiting_approval") acts.push(h("button", { type: "button", class: "danger", id: "job-approve", text: T("recall.approve"), onclick: async () => {
        if (await attempt(() => api("POST", path + "/approve", { run: true }))) poll();
      } }));
      if (P.canAct && quiet && copies.some((c) => RESTORABLE.has(c.state))) acts.push(h("button", { type: "button", id: "restore-all", text: T("recall.restore_all"), onclick: () => restore([]) }));
      fill("job-actions", acts);
      const cols = [
        { label: T("col.recipient"), key: "recipient" },
        { label: T("col.tracking"), render: (c) => h("a", { class: "mono", href: "/messages?tracking_id=" + encodeURIComponent(c.tracking_id), text: c.tracking_id }) },
        { label: T("col.mailbox"), key: "mailbox" },
        { label: T("col.state"), render: (c) => h("span", { class: "copy-state" }, stateBadge(c.state)) },
        { label: T("col.folder"), key: "folder" },
        { label: "✓", render: (c) => (c.verified ? "✓" : "") },
        { label: T("col.detail"), key: "reason" },
      ];
      if (P.canAct) cols.push({ label: "", render: (c) => (quiet && RESTORABLE.has(c.state) ? h("button", {
        type: "button", class: "small restore-one", text: T("recall.restore_one"), onclick: () => restore([c.tracking_id]),
      }) : null) });
      fill("job-copies", table(cols, copies, { id: "copies-table", rowAttrs: (c) => ({ dataset: { tracking: c.tracking_id, state: c.state } }) }));
      return quiet;
    };
    const poll = async () => {
      clearTimeout(timer);
      try {
        const st = await api("GET", path);
        if (!render(st)) timer = setTimeout(poll, 700);
      } catch (e) {
        flash(e.message, "error");
        timer = setTimeout(poll, 3000);
      }
    };
    await poll();
  };

  function incidentTable(items) {
    return table([
      { label: "", render: (i) => mono(String(i.id || "").slice(0, 12)) },
      { label: T("col.state"), render: (i) => stateBadge(i.state || i.status || "") },
      { label: T("col.user"), render: (i) => i.account || i.user || i.subject || "" },
      { label: T("col.detail"), render: (i) => i.summary || i.reason || i.kind || "" },
      { label: T("col.created"), render: (i) => fmtTime(i.created_at || i.opened_at || i.at) },
    ], items);
  }

  pages.incidents = async function () {
    const res = await api("GET", "/incidents?limit=100");
    if (!res.available) { fill("incidents", h("p", { class: "muted", text: T("inc.unavailable") })); return; }
    const t = incidentTable(res.items);
    if (P.canAct && res.items.length) {
      fill("incidents", t, h("p", { class: "muted small" }, ...res.items.map((i) =>
        h("button", { type: "button", class: "small", text: `${T("inc.release")} ${i.id}`, onclick: async () => {
          const reason = window.prompt(T("common.reason")) || "";
          if (await attempt(() => api("POST", `/incidents/${encodeURIComponent(i.id)}/release`, { reason }), "✓")) pages.incidents();
        } }))));
    } else fill("incidents", t);
  };

  pages.indicators = async function () {
    const load = async () => {
      const q = ($("ind-q") || {}).value || "";
      const res = await api("GET", "/indicators?limit=1000" + (q ? "&q=" + encodeURIComponent(q) : ""));
      fill("indicators", table([
        { label: T("col.kind"), render: (i) => badge(i.kind, "src") },
        { label: T("col.value"), render: (i) => mono(i.value) },
        { label: T("col.source"), key: "source" },
        { label: T("col.file"), render: (i) => h("span", { class: "small muted", text: i.file.split("/").pop() + (i.ref ? ` (${i.ref})` : "") }) },
      ], res.items));
      fill("ind-files", res.files.map((f) => h("div", { text: `${f.file}: ${f.count}${f.error ? " — " + f.error : ""}` })));
    };
    $("ind-filter").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    const form = $("indicator-form");
    if (form) {
      fill("ind-kind", ["domain", "url", "sender", "ip", "sha256"].map((k) => h("option", { text: k })));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const body = { kind: $("ind-kind").value, value: $("ind-value").value, note: $("ind-note").value, recall: $("ind-recall").checked };
        const res = await attempt(() => api("POST", "/indicators", body));
        if (res) {
          fill("ind-result", `${T("ind.added")}: ${res.kind} ${res.value}` + (res.recalls.length ? ` · ${T("nav.recall")}: ${res.recalls.map((r) => r.job_id).join(", ")}` : ""));
          load();
        }
      });
      $("import-form").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const fd = new FormData();
        fd.append("file", $("ind-file").files[0]);
        fd.append("recall", $("imp-recall").checked ? "true" : "false");
        const res = await attempt(() => api("POST", "/indicators/import", fd));
        if (res) { fill("imp-result", `${res.count}: ${JSON.stringify(res.counts)}`); load(); }
      });
    }
    await load();
  };

  pages.reports = async function () {
    const load = async () => {
      const all = ($("rep-all") || {}).checked;
      const res = await api("GET", `/reports?days=0${all ? "&all=true" : ""}`);
      const cols = [
        { label: T("rep.last"), render: (r) => h("span", { class: "nowrap", text: fmtTime(r.last_reported) }) },
        { label: T("rep.reporters"), render: (r) => h("span", { title: r.reporters.join(", ") },
          h("b", { text: String(r.reporters.length) }), " ", h("span", { class: "small muted", text: r.reporters.join(", ") })) },
        { label: T("col.from"), render: (r) => mono((r.message && (r.message.from_addr || r.message.mail_from)) || r.sender) },
        { label: T("col.subject"), render: (r) => r.mail_id
          ? h("a", { href: "/messages/" + encodeURIComponent(r.mail_id), text: (r.message && r.message.subject) || r.subject || "(no subject)" })
          // Not found: the report itself, with what it attached or quoted, is one click away.
          : [h("a", { href: "/messages/" + encodeURIComponent(r.report_ids[0]), class: "report-mail", text: r.subject || "(no subject)" }),
            " ", h("span", { class: "muted small", text: T("rep.not_found") })] },
        { label: T("col.action"), render: (r) => r.message ? [actionBadge(r.message.action), " ", (r.message.score || 0).toFixed(1)] : "" },
        { label: T("col.status"), render: (r) => stateBadge(r.state) },
      ];
      if (P.canAct) cols.push({ label: "", render: (r) => r.state !== "open" ? "" : h("div", { class: "row-actions" },
        r.mail_id ? h("button", { type: "button", class: "danger small condemn-report", text: T("rep.condemn"), onclick: async () => {
          if (!window.confirm(`${T("rep.condemn")}: ${(r.message && r.message.subject) || r.subject}?`)) return;
          const reason = `reported by ${r.reporters.length}: ${r.reporters.join(", ")}`;
          if (await attempt(() => api("POST", `/messages/${encodeURIComponent(r.mail_id)}/condemn`, { reason }), T("rep.condemned"))) load();
        } }) : null,
        h("button", { type: "button", class: "small dismiss-report", text: T("rep.dismiss"), onclick: async () => {
          if (await attempt(() => api("POST", `/reports/${encodeURIComponent(r.key)}/dismiss`, {}), T("rep.dismissed"))) load();
        } })) });
      fill("reports", res.items.length ? table(cols, res.items, { id: "reports-table", rowAttrs: (r) => ({ dataset: { key: r.key, state: r.state } }) })
        : h("p", { class: "empty muted", text: T("rep.none") }));
    };
    $("rep-all").addEventListener("change", load);
    await load();
  };

  pages.lists = async function () {
    const load = async () => {
      const res = await api("GET", "/lists");
      const cols = [
        { label: T("lists.list"), render: (e) => badge(T(`lists.${e.list}`), e.list === "allow" ? "st-delivered" : "st-failed") },
        { label: T("col.kind"), render: (e) => badge(e.kind, "src") },
        { label: T("col.value"), render: (e) => mono(e.value) },
        { label: T("common.reason"), key: "note" },
        { label: T("col.by"), key: "created_by" },
        { label: T("col.created"), render: (e) => h("span", { class: "nowrap", text: fmtTime(e.created_at) }) },
        { label: T("lists.expires"), render: (e) => h("span", { class: "nowrap", text: e.expires_at ? fmtTime(e.expires_at) : T("lists.never") }) },
      ];
      if (P.isAdmin) cols.push({ label: "", render: (e) => h("button", { type: "button", class: "danger small", text: T("lists.remove"), onclick: async () => {
        if (!window.confirm(`${T("lists.remove")}: ${e.value}?`)) return;
        if (await attempt(() => api("DELETE", `/lists/${e.id}`), T("lists.remove"))) load();
      } }) });
      fill("lists", table(cols, res.items, { id: "lists-table", rowAttrs: (e) => ({ dataset: { value: e.value, list: e.list } }) }));
      // What recipients chose on their digests' release pages.
      const safe = await api("GET", "/lists/safe");
      const safeCols = [
        { label: T("col.recipient"), render: (e) => mono(e.recipient) },
        { label: T("col.from"), render: (e) => mono(e.sender) },
        { label: T("col.created"), render: (e) => h("span", { class: "nowrap", text: fmtTime(e.created_at) }) },
      ];
      if (P.canAct) safeCols.push({ label: "", render: (e) => h("button", { type: "button", class: "danger small remove-safe", text: T("lists.remove"), onclick: async () => {
        if (!window.confirm(`${T("lists.remove")}: ${e.recipient} ← ${e.sender}?`)) return;
        if (await attempt(() => api("DELETE", `/lists/safe/${e.id}`), T("lists.remove"))) load();
      } }) });
      fill("safe-senders", table(safeCols, safe.items, { id: "safe-table", rowAttrs: (e) => ({ dataset: { recipient: e.recipient, sender: e.sender } }) }));
    };
    const form = $("list-form");
    if (form) form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const list = $("list-list").value;
      const body = { kind: $("list-kind").value, value: $("list-value").value, note: $("list-note").value, days: Number($("list-days").value || 0) };
      if (await attempt(() => api("POST", `/lists/${list}`, body), T("lists.added"))) { form.reset(); load(); }
    });
    await load();
  };

  pages.rules = async function () {
    const load = async () => {
      const res = await api("GET", "/rules");
      const cols = [
        { label: "id", render: (r) => h("span", { class: "mono", title: r.expression, text: r.id }) },
        { label: T("col.symbol"), render: (r) => mono(r.symbol) },
        { label: T("col.score"), key: "score", cls: "num" },
        { label: T("col.group"), key: "group" },
        { label: T("col.detail"), render: (r) => h("span", { class: "small", text: r.description || r.name }) },
        { label: T("col.source"), render: (r) => badge(r.source, "src") },
        { label: T("col.enabled"), render: (r) => (r.enabled ? badge(T("common.yes"), "st-done") : badge(T("common.no"), "st-failed")) },
      ];
      if (P.isAdmin) cols.push({ label: "", render: (r) => h("button", { type: "button", class: "small", text: r.enabled ? T("rules.disable") : T("rules.enable"), onclick: async () => {
        if (await attempt(() => api("POST", `/rules/${encodeURIComponent(r.id)}/${r.enabled ? "disable" : "enable"}`, {}), "✓")) load();
      } }) });
      fill("rules", table(cols, res.items, { id: "rules-table" }));
      fill("rule-errors", res.errors.map((e) => h("div", { text: e })));
    };
    const up = $("rule-upload");
    if (up) up.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const fd = new FormData();
      fd.append("file", $("rule-file").files[0]);
      for (const f of $("rule-samples").files) fd.append("samples", f);
      const res = await attempt(() => api("POST", "/rules/upload", fd));
      if (res) { fill("rule-result", `${res.id} → ${res.file}`); load(); }
    });
    await load();
  };

  pages.audit = async function () {
    const form = $("audit-filter");
    const qs = new URLSearchParams(location.search);
    for (const [k, v] of qs.entries()) if (form.elements[k]) form.elements[k].value = v;
    const load = async (offset) => {
      const q = new URLSearchParams(formObject(form));
      history.replaceState(null, "", "/audit" + (q.toString() ? "?" + q : ""));
      q.set("limit", "100");
      q.set("offset", String(offset));
      const res = await api("GET", "/audit?" + q);
      fill("audit", table([
        { label: T("common.time"), render: (r) => h("span", { class: "nowrap", text: fmtTime(r.at) }) },
        { label: T("col.actor"), key: "actor" },
        { label: T("col.what"), render: (r) => h("span", { class: "mono audit-action", text: r.action }) },
        { label: T("col.target"), render: (r) => mono(r.target) },
        { label: T("col.where"), key: "source" },
        { label: T("col.detail"), render: (r) => h("span", { class: "small mono wrap", text: [r.note, r.detail && Object.keys(r.detail).length ? JSON.stringify(r.detail) : ""].filter(Boolean).join(" · ") }) },
      ], res.items, { id: "audit-table", rowAttrs: (r) => ({ dataset: { action: r.action } }) }));
      pager($("pager"), res.total, res.limit, res.offset, load);
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load(0); });
    await load(0);
  };

  pages.users = async function () {
    const load = async () => {
      const res = await api("GET", "/users");
      fill("users", table([
        { label: T("col.user"), key: "username" },
        { label: T("col.role"), render: (u) => {
          const sel = h("select", { onchange: async () => {
            if (!(await attempt(() => api("PATCH", `/users/${encodeURIComponent(u.username)}`, { role: sel.value }), "✓"))) load();
          } }, ["admin", "analyst", "auditor"].map((r) => h("option", { value: r, text: r, selected: r === u.role })));
          return sel;
        } },
        { label: T("col.disabled"), render: (u) => h("button", { type: "button", class: "small", text: u.disabled ? T("common.yes") : T("common.no"), onclick: async () => {
          if (await attempt(() => api("PATCH", `/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled }), "✓")) load();
        } }) },
        { label: T("col.created"), render: (u) => fmtTime(u.created_at) },
        { label: T("col.lastlogin"), render: (u) => fmtTime(u.last_login) },
      ], res.items, { id: "users-table" }));
      const toks = await api("GET", "/tokens");
      fill("tokens", table([
        { label: T("col.name"), key: "name" },
        { label: T("col.user"), key: "username" },
        { label: "", render: (t) => mono(t.prefix + "…") },
        { label: T("col.created"), render: (t) => fmtTime(t.created_at) },
        { label: "", render: (t) => (t.revoked ? badge("revoked", "st-failed") : h("button", { type: "button", class: "small danger", text: "revoke", onclick: async () => {
          if (await attempt(() => api("DELETE", `/tokens/${t.id}`), "✓")) load();
        } })) },
      ], toks.items));
    };
    $("user-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { username: $("new-username").value, password: $("new-password").value, role: $("new-role").value };
      if (await attempt(() => api("POST", "/users", body), `${T("users.add")} ✓`)) { ev.target.reset(); load(); }
    });
    $("token-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const res = await attempt(() => api("POST", "/tokens", { name: $("token-name").value }));
      if (res) { const s = $("token-secret"); s.textContent = res.token; s.hidden = false; load(); }
    });
    await load();
  };

  // -- start --------------------------------------------------------------------------------
  function start() {
    const out = $("logout");
    if (out) out.addEventListener("click", async () => {
      try { await api("POST", "/auth/logout", {}); } catch (e) { /* the session may already be gone */ }
      location.href = "/login";
    });
    let name = P.page;
    if (name === "messages" && P.mail_id) name = "message";
    if (name === "recall" && P.job_id) name = "recall_job";
    const fn = pages[name];
    if (!fn) return;
    Promise.resolve(fn()).then(() => { document.body.dataset.ready = "1"; }).catch((e) => {
      flash(`${T("common.error")}: ${e.message}`, "error");
      document.body.dataset.ready = "error";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

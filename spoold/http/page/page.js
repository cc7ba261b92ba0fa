// The jobs page of `spoold serve` (docs/http.md, "The page"). It uses only the API:
// GET /v1/spools, the job list and records, POST jobs (XMLHttpRequest, for its upload
// progress), DELETE (cancel), POST retry, GET error, GET download-links (signed links
// when the gateway has tokens), and GET events (Server-Sent Events, read with fetch so
// the bearer header goes along). Every name is set with textContent, never as markup.
import { el, render } from "./rows.js";
import { wireUploads } from "./upload.js";

{
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "spoold.token";
  const SPOOL_KEY = "spoold.spool";
  const ENDED = ["done", "failed"];
  const S = {
    spools: [], spool: null, caller: null, gen: 0, abort: null, next: null,
    filters: { states: ["queued", "running", "done", "failed"], name: "", code: "", owner: "" },
    rows: new Map(), signed: new Map(), signing: new Set(), errors: new Map(), open: new Set(),
    pending: new Set(), timer: null, inflight: new Map(),
  };

  // ------------------------------------------------------------------ the API
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const enc = encodeURIComponent;
  const base = () => `/v1/spools/${enc(S.spool.name)}`;

  function headers(extra) {
    const h = Object.assign({}, extra);
    if (token()) h.Authorization = `Bearer ${token()}`;
    return h;
  }

  class Failure extends Error {
    constructor(status, body, retryAfter) {
      super(describe(status, body, retryAfter));
      this.status = status;
    }
  }

  async function api(method, path) {
    const res = await fetch(path, {
      method, headers: headers({ Accept: "application/json" }), cache: "no-store", credentials: "omit",
    });
    const type = res.headers.get("content-type") || "";
    const body = type.includes("json") ? await res.json() : await res.text();
    if (res.status === 401) needToken(body);
    if (!res.ok) throw new Failure(res.status, body, res.headers.get("retry-after"));
    return body;
  }

  const WORDS = {
    400: "The request was not understood.", 401: "The token was not accepted.",
    403: "That is not allowed.", 404: "Not found.", 408: "The upload was too slow.",
    409: "Not possible now.", 413: "The file is too large.",
    415: "This kind of file cannot be converted.", 422: "The server refused it.",
    429: "The queue is full right now.", 503: "The server is not ready.",
    507: "The server's disk is full.",
  };

  function describe(status, body, retryAfter) {
    const err = (body && body.error) || {};
    let text = WORDS[status] || `The server answered ${status}.`;
    if (err.message) text += ` ${err.message[0].toUpperCase()}${err.message.slice(1)}.`;
    if (err.hint) text += ` ${err.hint}`;
    if (status === 429 && retryAfter) text += ` (Try again in ${retryAfter} s.)`;
    return text;
  }

  // ------------------------------------------------------------------ small helpers
  const announce = (text) => { $("announce").textContent = text; };
  const show = (id, yes) => { $(id).hidden = !yes; };

  function globRegExp(glob) {
    let out = "";
    for (let i = 0; i < glob.length; i++) {
      const c = glob[i];
      if (c === "*") out += ".*";
      else if (c === "?") out += ".";
      else if (c === "[" && glob.indexOf("]", i + 2) > 0) {
        const end = glob.indexOf("]", i + 2);
        let set = glob.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (set[0] === "!") set = `^${set.slice(1)}`;
        out += `[${set}]`;
        i = end;
      } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    return new RegExp(`^${out}$`, "s");
  }

  // ------------------------------------------------------------------ the token
  function needToken(body) {
    S.gen += 1;
    if (S.abort) S.abort.abort();
    const err = (body && body.error) || {};
    $("auth-msg").textContent = token()
      ? `The token was not accepted (${err.message || "unauthorized"}). Paste another one.`
      : "This server needs an access token. Paste the one you were given.";
    show("auth", true);
    show("upload", false);
    show("jobs-section", false);
    show("spool-form", false);
    $("token").focus();
  }

  function showCaller() {
    const who = $("who");
    who.textContent = "";
    const c = S.caller;
    if (!c || !c.tokens) return;
    who.append(el("span", null, `Signed in as ${c.name} (${c.role}) `));
    const forget = el("button", null, "Forget token");
    forget.type = "button";
    forget.addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      who.textContent = "";
      needToken(null);
    });
    who.append(forget);
  }

  // ------------------------------------------------------------------ spools
  async function start() {
    let answer;
    try {
      answer = await api("GET", "/v1/spools");
    } catch (e) {
      if (e.status !== 401) $("live").textContent = e.message;
      return;
    }
    S.spools = answer.spools;
    S.caller = answer.caller;
    show("auth", false);
    showCaller();
    const select = $("spool");
    select.textContent = "";
    for (const sp of S.spools) select.append(new Option(sp.name, sp.name));
    const wanted = sessionStorage.getItem(SPOOL_KEY);
    select.value = S.spools.some((sp) => sp.name === wanted) ? wanted : S.spools[0].name;
    show("spool-form", S.spools.length > 1);
    show("upload", true);
    show("jobs-section", true);
    choose(select.value);
  }

  function choose(name) {
    S.spool = S.spools.find((sp) => sp.name === name);
    sessionStorage.setItem(SPOOL_KEY, name);
    for (const box of document.querySelectorAll("input[name=target]")) {
      box.checked = S.spool.targets.includes(box.value);
    }
    const route = $("route");
    route.textContent = "";
    route.append(new Option("none", ""));
    for (const r of Object.keys(S.spool.routes)) route.append(new Option(r, r));
    show("route-field", Object.keys(S.spool.routes).length > 0);
    $("limits").textContent =
      `Up to ${S.spool.max_upload_mb} MB per upload; the queue takes ${S.spool.max_queued} jobs.`;
    follow(++S.gen);
  }

  // ------------------------------------------------------------------ the job list
  function query(cursor) {
    const f = S.filters;
    const q = new URLSearchParams({ limit: "50" });
    q.set("state", f.states.join(","));
    for (const key of ["name", "code", "owner"]) if (f[key]) q.set(key, f[key]);
    if (cursor) q.set("cursor", cursor);
    return `${base()}/jobs?${q}`;
  }

  async function loadJobs(cursor) {
    const page = await api("GET", query(cursor));
    if (!cursor) {
      $("jobs").textContent = "";
      S.rows.clear();
    }
    for (const job of page.jobs) upsert(job, false);
    S.next = page.next;
    show("more", Boolean(page.next));
    show("empty", S.rows.size === 0);
  }

  function wanted(job) {
    const f = S.filters;
    if (!f.states.includes(job.state)) return false;
    if (f.name && !globRegExp(f.name).test(job.name)) return false;
    if (f.code && job.code !== f.code) return false;
    return !f.owner || job.submitted_by === f.owner;
  }

  const keyOf = (job) => job.job_id || `entry:${job.folder}`;
  const label = (job) => (ENDED.includes(job.state) ? job.status : job.state);

  function upsert(job, live = true) {
    const key = keyOf(job);
    const old = S.rows.get(key);
    if (job.job_id) {
      // A folder-dropped job listed before its id was known: the same entry, now with one.
      for (const [k, row] of S.rows) {
        if (!row.job.job_id && row.job.name === job.name && k !== key) removeRow(k);
      }
    }
    if (!wanted(job)) {
      if (old) removeRow(key);
      return;
    }
    if (old && JSON.stringify(old.job) === JSON.stringify(job)) return;
    const li = render(job, actions);
    li.dataset.key = key;
    if (old) replaceRow(old.li, li);
    else insertSorted(li, key);
    S.rows.set(key, { job, li });
    show("empty", false);
    if (live && (!old || label(old.job) !== label(job))) announce(`${job.name}: ${label(job)}`);
    if (job.state === "done" && S.caller && S.caller.tokens) sign(job);
  }

  // A row updated while a person works in it keeps their place: the same button, or
  // the row, gets the focus back.
  function replaceRow(old, li) {
    const focused = old.contains(document.activeElement) && document.activeElement;
    old.replaceWith(li);
    const again = focused && li.querySelector(`[data-action="${focused.dataset.action}"]`);
    if (again) again.focus();
    else if (focused) li.focus();
  }

  function insertSorted(li, key) {
    const list = $("jobs");
    for (const other of list.children) {
      if (other.dataset.key < key) {
        list.insertBefore(li, other);
        return;
      }
    }
    list.append(li);
  }

  function removeRow(key) {
    const row = S.rows.get(key);
    if (row) row.li.remove();
    S.rows.delete(key);
  }

  // ------------------------------------------------------------------ acting on jobs
  const jobPath = (id) => `${base()}/jobs/${enc(id)}`;

  const actions = {
    async act(job, what) {
      const path = what === "retry" ? `${jobPath(job.job_id)}/retry`
        : `${jobPath(job.job_id)}?mode=${what === "hard" ? "hard" : "graceful"}`;
      const verb = { retry: "Retry", hard: "Hard cancel", cancel: "Cancel" }[what];
      try {
        const rec = await api(what === "retry" ? "POST" : "DELETE", path);
        announce(`${verb} requested: ${job.name}`);
        upsert(rec, false);
      } catch (e) {
        announce(`${verb} of ${job.name} failed: ${e.message}`);
      }
    },
    async errorText(job, pre) {
      S.open.add(keyOf(job));
      const cacheKey = `${job.job_id}:${job.finished_at}`;
      if (!S.errors.has(cacheKey)) {
        try {
          const text = await api("GET", `${jobPath(job.job_id)}/error`);
          S.errors.set(cacheKey, text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&"));
        } catch (e) {
          pre.textContent = e.message;
          return;
        }
      }
      pre.textContent = S.errors.get(cacheKey);
    },
    closed(job) { S.open.delete(keyOf(job)); },
    isOpen(job) { return S.open.has(keyOf(job)); },
    href(job, art) {
      if (!S.caller || !S.caller.tokens) return art.url;
      const links = S.signed.get(job.job_id);
      return links ? links.urls[art.path] : null;
    },
  };

  async function sign(job) {
    const links = S.signed.get(job.job_id);
    if (S.signing.has(job.job_id) || (links && links.expires - Date.now() / 1000 > 120)) return;
    S.signing.add(job.job_id);
    try {
      const answer = await api("GET", `${jobPath(job.job_id)}/download-links`);
      const urls = {};
      for (const a of answer.artifacts) urls[a.path] = a.url;
      S.signed.set(job.job_id, { expires: answer.expires, urls });
      const row = S.rows.get(job.job_id);
      if (row) {
        const li = render(row.job, actions);
        li.dataset.key = job.job_id;
        replaceRow(row.li, li);
        row.li = li;
      }
    } catch (e) {
      announce(`No download link for ${job.name}: ${e.message}`);
    } finally {
      S.signing.delete(job.job_id);
    }
  }

  // ------------------------------------------------------------------ live updates
  function schedule(id) {
    S.pending.add(id);
    if (!S.timer) S.timer = setTimeout(flush, 50);
  }

  function flush() {
    S.timer = null;
    for (const id of S.pending) refresh(id);
    S.pending.clear();
  }

  async function refresh(id) {
    if (S.inflight.has(id)) {
      S.inflight.set(id, true); // asked again meanwhile: once more after this answer
      return;
    }
    S.inflight.set(id, false);
    const gen = S.gen;
    try {
      const job = await api("GET", jobPath(id));
      if (gen === S.gen) upsert(job);
    } catch (e) {
      if (e.status === 404) removeRow(id);
    } finally {
      const again = S.inflight.get(id);
      S.inflight.delete(id);
      if (again && gen === S.gen) refresh(id);
    }
  }

  function parseBlock(block) {
    const ev = { id: null, event: "message", data: "" };
    for (const line of block.split("\n")) {
      if (!line || line[0] === ":") continue;
      const at = line.indexOf(":");
      const field = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
      else if (field === "data") ev.data += value;
    }
    return ev.data ? ev : null;
  }

  async function follow(gen) {
    if (S.abort) S.abort.abort();
    let lastId = null;
    let delay = 1000;
    while (gen === S.gen) {
      const ctrl = new AbortController();
      S.abort = ctrl;
      try {
        const h = headers({ Accept: "text/event-stream" });
        if (lastId) h["Last-Event-ID"] = lastId;
        const res = await fetch(`${base()}/events`, {
          headers: h, signal: ctrl.signal, cache: "no-store", credentials: "omit",
        });
        if (res.status === 401) return needToken(await res.json());
        if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
        // The stream starts at new events: the list is read after it is open, so no
        // change falls between the two (after a reconnect Last-Event-ID replays them).
        if (!lastId) await loadJobs();
        $("live").textContent = "Live";
        delay = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done || gen !== S.gen) break;
          buf += value;
          let at;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            const ev = parseBlock(buf.slice(0, at));
            buf = buf.slice(at + 2);
            if (!ev) continue;
            if (ev.id) lastId = ev.id;
            const data = JSON.parse(ev.data);
            if (typeof data.job_id === "string") schedule(data.job_id);
          }
        }
      } catch (e) {
        if (gen !== S.gen) return;
        if (S.rows.size === 0) loadJobs().catch(() => {});
      }
      if (gen !== S.gen) return;
      $("live").textContent = "Not live: connecting again…";
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  // A running job's stage is in its record, not in an event: asked for every 2 s.
  setInterval(() => {
    if (document.visibilityState !== "visible" || !S.spool) return;
    let n = 0;
    for (const { job } of S.rows.values()) {
      if (job.state === "running" && job.job_id && n++ < 20) refresh(job.job_id);
      if (job.state === "done" && S.caller && S.caller.tokens) sign(job);
    }
  }, 2000);

  // ------------------------------------------------------------------ wiring
  function wire() {
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      $("token").value = "";
      start();
    });
    $("spool").addEventListener("change", (e) => choose(e.target.value));
    $("route").addEventListener("change", (e) => {
      const route = S.spool.routes[e.target.value] || S.spool.targets;
      for (const box of document.querySelectorAll("input[name=target]")) {
        box.checked = route.includes(box.value);
      }
    });
    $("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      const boxes = document.querySelectorAll("#filters input[name=state]:checked");
      S.filters = {
        states: Array.from(boxes, (b) => b.value),
        name: $("f-name").value.trim(),
        code: $("f-code").value.trim(),
        owner: $("f-owner").value.trim(),
      };
      if (!S.filters.states.length) S.filters.states = ["queued", "running", "done", "failed"];
      loadJobs().catch((err) => announce(err.message));
    });
    $("more").addEventListener("click", () => loadJobs(S.next).catch((e) => announce(e.message)));
    wireUploads(() => ({ spool: S.spool, token: token(), describe, onJob: upsert, needToken, announce }));
  }

  wire();
  start();
}

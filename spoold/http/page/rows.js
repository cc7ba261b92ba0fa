// One job as a list item: name, state and stage, times, downloads, buttons, and for a
// failed job why (its error) and, one click away, the whole ERROR.txt. Built with
// createElement and textContent only: a name like <img src=x onerror=...> stays text.

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function when(iso) {
  if (!iso) return null;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function size(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function seconds(from, to) {
  const s = (new Date(to) - new Date(from)) / 1000;
  if (!Number.isFinite(s) || s < 0) return null;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function stamp(what, iso) {
  const span = el("span", null, `${what} `);
  const t = el("time", null, when(iso));
  t.dateTime = iso;
  span.append(t);
  return span;
}

function times(job) {
  const p = el("p", "times");
  const parts = [];
  if (job.created_at) parts.push(stamp("submitted", job.created_at));
  if (job.started_at) parts.push(stamp("started", job.started_at));
  if (job.finished_at) parts.push(stamp("finished", job.finished_at));
  const took = job.finished_at && job.started_at && seconds(job.started_at, job.finished_at);
  if (took) parts.push(el("span", null, `took ${took}`));
  parts.forEach((part, i) => {
    if (i) p.append(" · ");
    p.append(part);
  });
  return p;
}

function head(job) {
  const div = el("div", "head");
  div.append(el("span", "name", job.name));
  const status = ["done", "failed"].includes(job.state) ? job.status : job.state;
  div.append(el("span", "badge state", status));
  if (job.state === "running") div.append(el("span", "stage", `stage: ${job.stage || "starting"}`));
  if (job.cancel_requested) div.append(el("span", "badge cancel", "cancel requested"));
  if (job.waiting && job.waiting.reason) div.append(el("span", "waiting", `waiting: ${job.waiting.reason}`));
  return div;
}

function meta(job) {
  const bits = [];
  if (job.job_id) bits.push(`id ${job.job_id}`);
  if (job.attempt > 1) bits.push(`attempt ${job.attempt}`);
  if (job.route) bits.push(`route ${job.route}`);
  if (job.submitted_by) bits.push(`by ${job.submitted_by}`);
  return el("p", "meta", bits.join(" · "));
}

function artifacts(job, actions) {
  const div = el("div", "artifacts");
  for (const art of job.artifacts || []) {
    const href = actions.href(job, art);
    const text = `${art.name}${art.size !== undefined ? ` (${size(art.size)})` : ""}`;
    if (href) {
      const a = el("a", "download", `Download ${text}`);
      a.href = href;
      a.download = art.name;
      a.rel = "noreferrer";
      div.append(a);
    } else div.append(el("span", "muted", `${text}: preparing a link…`));
  }
  return div;
}

function failure(job, actions) {
  const frag = document.createDocumentFragment();
  const err = job.error || {};
  if (err.message || err.code) {
    const why = el("p", "why", `${err.code ? `${err.code}: ` : ""}${err.message || ""}`);
    frag.append(why);
    if (err.hint) frag.append(el("p", "hint", err.hint));
  }
  if (!job.job_id) return frag;
  const details = el("details", "error-text");
  details.append(el("summary", null, "The whole error report (ERROR.txt)"));
  const pre = el("pre", null, "Loading…");
  details.append(pre);
  details.addEventListener("toggle", () => {
    if (details.open) actions.errorText(job, pre);
    else actions.closed(job);
  });
  if (actions.isOpen(job)) {
    details.open = true; // the toggle event loads the text again (from the page's cache)
  }
  frag.append(details);
  return frag;
}

function button(text, what, job, actions, cls) {
  const b = el("button", cls || null, text);
  b.type = "button";
  b.dataset.action = what;
  b.setAttribute("aria-label", `${text}: ${job.name}`);
  b.addEventListener("click", () => {
    b.disabled = true;
    actions.act(job, what).finally(() => { b.disabled = false; });
  });
  return b;
}

export function render(job, actions) {
  const li = el("li", `job ${job.state}`);
  li.tabIndex = -1;
  li.append(head(job), times(job), meta(job));
  if (job.state === "done") li.append(artifacts(job, actions));
  if (job.state === "failed") li.append(failure(job, actions));
  const acts = el("div", "actions");
  if (job.job_id && (job.state === "queued" || job.state === "running")) {
    acts.append(button("Cancel", "cancel", job, actions));
    acts.append(button("Hard cancel", "hard", job, actions, "danger"));
  }
  if (job.job_id && job.state === "failed") acts.append(button("Retry", "retry", job, actions));
  li.append(acts);
  return li;
}

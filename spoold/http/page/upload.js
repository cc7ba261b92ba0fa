// Uploads: files dropped anywhere on the page or chosen with the file input, each one
// POSTed as its own job (multipart: file, options, resources, reference) with
// XMLHttpRequest, whose upload events drive a progress bar. Refusals (413, 415, 422,
// 429...) are shown in plain words with the hint of the answer's error envelope.
import { el } from "./rows.js";

const $ = (id) => document.getElementById(id);
const MB = 1024 * 1024;

function options(file) {
  const boxes = document.querySelectorAll("input[name=target]:checked");
  const out = {};
  let targets = Array.from(boxes, (b) => b.value);
  // A PDF has no HTML output: with other targets chosen, leave it out for PDFs (alone,
  // the server's answer says why).
  if (/\.pdf$/i.test(file.name) && targets.some((t) => t !== "html")) {
    targets = targets.filter((t) => t !== "html");
  }
  if (targets.length) out.targets = targets;
  const priority = $("priority").value.trim();
  if (priority !== "") out.priority = Number(priority);
  return out;
}

function tooLarge(file, spool) {
  const total = file.size + ["resources", "reference"]
    .reduce((n, id) => n + ($(id).files[0] ? $(id).files[0].size : 0), 0);
  if (total <= spool.max_upload_mb * MB) return null;
  return {
    error: {
      message: `${file.name} and its attachments are ${(total / MB).toFixed(1)} MB; ` +
        `this spool takes at most ${spool.max_upload_mb} MB per upload`,
      hint: "Send a smaller document, or ask for a higher max_upload_mb.",
    },
  };
}

function send(file, ctx) {
  const { spool } = ctx;
  const item = el("li", "upload");
  item.append(el("span", "name", file.name));
  const bar = el("progress");
  bar.max = Math.max(file.size, 1);
  bar.value = 0;
  bar.setAttribute("aria-label", `Upload of ${file.name}`);
  const status = el("p", "status", "Uploading…");
  item.append(bar, status);
  $("uploads").prepend(item);
  const fail = (text) => {
    bar.remove();
    status.className = "status error";
    status.textContent = text;
    ctx.announce(`Upload of ${file.name} refused: ${text}`);
  };
  const big = tooLarge(file, spool);
  if (big) return fail(ctx.describe(413, big));

  const form = new FormData();
  form.append("file", file, file.name);
  form.append("options", JSON.stringify(options(file)));
  for (const id of ["resources", "reference"]) {
    const extra = $(id).files[0];
    if (extra) form.append(id, extra, extra.name);
  }
  const route = $("route").value;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `/v1/spools/${encodeURIComponent(spool.name)}/jobs${route ? `?route=${encodeURIComponent(route)}` : ""}`);
  if (ctx.token) xhr.setRequestHeader("Authorization", `Bearer ${ctx.token}`);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      bar.max = e.total;
      bar.value = e.loaded;
    }
  });
  xhr.addEventListener("load", () => {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (e) {
      body = null;
    }
    if (xhr.status === 202 || xhr.status === 200) {
      bar.value = bar.max;
      status.textContent = `Queued as job ${body.job_id}.`;
      ctx.onJob(body);
      setTimeout(() => item.remove(), 8000);
      return;
    }
    if (xhr.status === 401) ctx.needToken(body);
    fail(ctx.describe(xhr.status, body, xhr.getResponseHeader("Retry-After")));
  });
  xhr.addEventListener("error", () => {
    fail("The upload did not reach the server: the connection failed or was closed.");
  });
  xhr.send(form);
  return undefined;
}

export function wireUploads(context) {
  const sendAll = (files) => {
    const ctx = context();
    if (!ctx.spool) return;
    for (const file of files) send(file, ctx);
  };
  const input = $("files");
  input.addEventListener("change", () => {
    sendAll(Array.from(input.files));
    input.value = "";
  });
  const zone = $("drop");
  let depth = 0;
  // The whole page takes drops (a file dropped beside the zone must not be opened by
  // the browser instead); the zone shows where.
  document.addEventListener("dragenter", (e) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes("Files")) return;
    depth += 1;
    zone.classList.add("over");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("over");
  });
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    if (!$("upload").hidden && e.dataTransfer) sendAll(Array.from(e.dataTransfer.files));
  });
}

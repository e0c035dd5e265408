// The page of `hyv serve`: a form that posts jobs, the queue (live through server-sent events) and the gallery.
// Everything shown comes from the JSON API (docs/serve.md); text is set with textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const INTS = ["seed", "num_videos", "steps", "frames", "height", "width", "fps", "text_len", "save_every", "stop_at"];
const FLOATS = ["guidance", "shift", "cfg_scale"];
const FIELDS = [...INTS, ...FLOATS, "neg_prompt"];
const FINISHED = ["done", "stopped", "failed", "cancelled"];
let defaults = {};
let finishedSeen = new Set();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

// ------------------------------------------------------------------------------------------------ the form

function formRequest() {
  const form = $("#job-form");
  const prompts = form.prompt.value.split("\n").map((s) => s.trim()).filter(Boolean);
  const body = prompts.length === 1 ? { prompt: prompts[0] } : { prompts };
  for (const name of FIELDS) {
    const input = form.elements[name];
    if (!input || input.value.trim() === "") continue;
    if (name === "stop_at" && !$("#preview").checked) continue;
    body[name] = INTS.includes(name) ? Number.parseInt(input.value, 10)
      : FLOATS.includes(name) ? Number.parseFloat(input.value) : input.value;
  }
  if (form.rewrite_mode.value) {
    body.rewrite = { mode: form.rewrite_mode.value, endpoint: form.rewrite_endpoint.value,
                     api_model: form.rewrite_api_model.value };
  }
  return body;
}

async function upload(file) {
  // The first frame's bytes -> its id on the server (POST /api/images), named by the job.
  const res = await fetch("/api/images", { method: "POST", headers: { "Content-Type": file.type || "image/png" },
                                           body: file });
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data.image;
}

async function submit(body, file) {
  $("#form-error").textContent = "";
  try {
    if (file) body.image = await upload(file);
    const got = await api("POST", "/api/jobs", body);
    if (!got.created) $("#form-error").textContent = `Already asked for: ${got.job.id} (${got.job.state}).`;
    await refresh();
  } catch (err) {
    $("#form-error").textContent = err.message;
  }
}

function fillForm(settings) {
  const form = $("#job-form");
  form.prompt.value = settings.prompt || "";
  for (const name of FIELDS) {
    if (form.elements[name] && name !== "stop_at") form.elements[name].value = settings[name] ?? "";
  }
  $("#preview").checked = false;
  window.scrollTo({ top: 0, behavior: "smooth" });
  form.prompt.focus();
}

function showDefaults() {
  const form = $("#job-form");
  for (const [name, value] of Object.entries(defaults)) {
    if (form.elements[name]) form.elements[name].placeholder = value;
  }
  if (!form.prompt.placeholder) form.prompt.placeholder = "a red circle moves up on a black background";
}

// ------------------------------------------------------------------------------------------------ the queue

function jobPrompt(job) {
  const items = job.request.items || [];
  const first = items.length ? items[0].prompt : "";
  return items.length > 1 ? `${first} (+${items.length - 1} more)` : first;
}

function jobDetail(job) {
  const p = job.progress || {};
  if (job.state === "running") {
    const step = p.steps ? ` · step ${p.step}/${p.steps}` : "";
    return `${p.stage || "starting"}${step} · rendered ${p.rendered ?? 0}/${p.videos ?? job.videos_expected}`;
  }
  if (job.state === "queued") return `queued · ${job.videos_expected} video(s)`;
  const made = job.videos.filter((v) => v.rendered).length;
  return `${job.state} · ${job.videos.length} video(s), ${made} rendered now`;
}

function renderJobs(jobs) {
  const list = $("#jobs");
  list.replaceChildren(...jobs.slice(0, 30).map((job) => {
    const actions = [];
    if (!FINISHED.includes(job.state)) {
      actions.push(el("button", { class: "small cancel", type: "button",
        onclick: () => api("POST", `/api/jobs/${job.id}/cancel`).then(refresh) }, "Cancel"));
    }
    if (job.state === "stopped") {
      actions.push(el("button", { class: "small continue", type: "button",
        onclick: () => api("POST", `/api/jobs/${job.id}/continue`).then(refresh) }, "Continue"));
    }
    const fraction = (job.progress && job.progress.fraction) || 0;
    return el("li", { class: "job", "data-id": job.id, "data-state": job.state },
      el("div", { class: "head" },
        el("span", { class: "prompt", title: jobPrompt(job) }, jobPrompt(job)),
        el("span", { class: `state ${job.state}` }, job.state)),
      el("progress", { max: "1", value: String(fraction) }),
      el("div", { class: "detail" }, el("span", {}, `${job.id} · ${jobDetail(job)}`), el("span", {}, ...actions)),
      job.error ? el("div", { class: "error" }, job.error) : "");
  }));
  $("#no-jobs").hidden = jobs.length > 0;
}

// ------------------------------------------------------------------------------------------------ the gallery

function card(v) {
  const size = `${v.frames}×${v.height}×${v.width}`;
  const pre = el("pre", {}, "loading…");
  const manifest = el("details", { class: "manifest",
    ontoggle: async (ev) => {
      if (!ev.target.open) return;
      const res = await fetch(v.manifest_url);
      pre.textContent = JSON.stringify(await res.json(), null, 2);
    } }, el("summary", {}, "Manifest"), pre);
  const actions = [
    el("button", { class: "small reuse", type: "button", onclick: () => fillForm(v.settings) }, "Reuse"),
    el("a", { class: "small", href: v.video_url, download: v.name }, "mp4"),
  ];
  if (v.is_preview) {
    actions.push(el("button", { class: "small continue", type: "button", onclick: () => submit(v.settings) },
      `Continue to step ${v.steps}`));
  }
  return el("figure", { class: "card", "data-name": v.name, "data-preview": v.is_preview ? "true" : "false" },
    el("video", { src: v.video_url, muted: true, loop: true, autoplay: true, playsinline: true, preload: "auto",
                  title: "click: pause / play",
                  onclick: (ev) => (ev.target.paused ? ev.target.play() : ev.target.pause()) }),
    el("figcaption", {},
      el("div", { class: "prompt" }, v.prompt || ""),
      el("div", { class: "meta" }, v.is_preview ? el("span", { class: "badge" }, `preview at step ${v.step} · `) : "",
        `seed ${v.seed} · ${v.steps} steps · ${size}`),
      el("div", { class: "actions" }, ...actions),
      manifest));
}

async function refreshGallery() {
  const { videos } = await api("GET", "/api/videos");
  const box = $("#videos");
  const have = new Map([...box.children].map((c) => [c.dataset.name, c]));
  box.replaceChildren(...videos.map((v) => have.get(v.name) || card(v)));  // playing videos are kept
  $("#no-videos").hidden = videos.length > 0;
}

// ------------------------------------------------------------------------------------------------ live updates

function showStatus(s) {
  defaults = s.defaults || {};
  showDefaults();
  $("#image-row").hidden = !s.image || s.image === "none";
  $("#image").required = s.image === "required";
  $("#image-need").textContent = s.image === "required" ? "(required: an image-to-video model)" : "(optional)";
  const model = s.bundled_demo ? "the bundled demo model" : s.model;
  const j = s.jobs;
  $("#status").textContent = `model: ${model} · DiT loads: ${s.loads.transformer || 0} · ` +
    `queued ${j.queued} · running ${j.running} · done ${j.done}`;
}

function update(data) {
  showStatus(data.status);
  renderJobs(data.jobs);
  const finished = data.jobs.filter((j) => FINISHED.includes(j.state)).map((j) => `${j.id}:${j.state}`);
  if (finished.some((id) => !finishedSeen.has(id))) {
    finishedSeen = new Set(finished);
    refreshGallery();
  }
}

async function refresh() {
  const [status, jobs] = await Promise.all([api("GET", "/api/status"), api("GET", "/api/jobs")]);
  update({ status, jobs: jobs.jobs });
}

function listen() {
  const events = new EventSource("/api/events");
  events.onmessage = (ev) => update(JSON.parse(ev.data));
  events.onerror = () => { $("#status").textContent = "reconnecting…"; };
}

$("#job-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("#image").files[0];
  submit(formRequest(), $("#image-row").hidden ? undefined : file);
});
$("#preview").addEventListener("change", () => { $("#stop-at").disabled = !$("#preview").checked; });
$("#stop-at").disabled = true;
refresh().then(refreshGallery).catch((err) => { $("#status").textContent = err.message; });
listen();

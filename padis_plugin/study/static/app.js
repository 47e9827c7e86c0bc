// padis-study reader page: plain JavaScript, no build step, nothing loaded from elsewhere.
// The server knows the key; this page only ever sees case numbers, image positions and PNGs.
"use strict";

const TOKEN_KEY = "padis-study-session";
const $ = (id) => document.getElementById(id);
const S = {
  token: localStorage.getItem(TOKEN_KEY), reader: null, caseNo: null, k: 0, selected: null, shownAt: 0,
  images: [], windowed: [], zoom: 1, cx: 0, cy: 0, win: 255, lev: 127.5, defaults: [0, 255], busy: false,
};

// ------------------------------------------------------------------------------------------ server
async function api(method, path, body) {
  const headers = { "X-Session": S.token || "" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                   cache: "no-store", credentials: "same-origin" });
  const data = resp.headers.get("Content-Type") === "image/png" ? await resp.blob()
    : await resp.json().catch(() => ({ error: `server answered ${resp.status}` }));
  if (!resp.ok) {
    const err = new Error(data.error || `server answered ${resp.status}`);
    err.status = resp.status; err.code = data.code;
    throw err;
  }
  return data;
}

function show(section) {
  for (const id of ["login", "study", "done"]) $(id).hidden = id !== section;
  $("logout").hidden = section === "login";
}

function setProgress(state) {
  S.reader = state.reader;
  $("who").textContent = `Reader ${state.reader}`;
  const current = state.next === null ? state.n_cases : state.next;
  $("progress").textContent = state.next === null ? `${state.n_cases} of ${state.n_cases} answered`
    : `case ${current} of ${state.n_cases}`;
  $("bar").max = state.n_cases; $("bar").value = state.done;
}

async function route(state) {
  setProgress(state);
  if (state.next === null) { show("done"); return; }
  await loadCase(state.next);
}

function sessionEnded(err) {
  if (err.status === 401) {
    localStorage.removeItem(TOKEN_KEY); S.token = null;
    show("login"); $("login-msg").textContent = err.message;
    return true;
  }
  return false;
}

// ------------------------------------------------------------------------------------------- login
async function login(takeover) {
  const reader = $("reader").value.trim();
  $("login-msg").textContent = "";
  try {
    const state = await api("POST", "/api/login", { reader, takeover });
    S.token = state.token; localStorage.setItem(TOKEN_KEY, S.token);
    $("takeover").hidden = true;
    await route(state);
  } catch (err) {
    if (err.code === "in_use") { $("takeover").hidden = false; }
    $("login-msg").textContent = err.message;
  }
}

$("login-form").addEventListener("submit", (e) => { e.preventDefault(); login(false); });
$("takeover-yes").addEventListener("click", () => login(true));
$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout", {}); } catch (err) { /* the session may be gone already */ }
  localStorage.removeItem(TOKEN_KEY); S.token = null; S.caseNo = null;
  $("who").textContent = ""; $("progress").textContent = ""; show("login");
});

// -------------------------------------------------------------------------------------------- case
async function loadCase(caseNo) {
  const viewer = $("viewer");
  viewer.dataset.ready = "0";
  const c = await api("GET", `/api/case/${caseNo}`);
  setProgress(c);
  S.caseNo = c.case; S.k = c.k; S.selected = null; S.defaults = c.window;
  $("question").textContent = c.question; $("kmax").textContent = String(c.k);
  $("comment").value = ""; $("submit").disabled = true; $("msg").textContent = "";
  const blobs = await Promise.all([...Array(c.k + 1).keys()].map(
    (p) => api("GET", `/api/case/${caseNo}/image/${p}`)));
  S.images = [];
  for (const blob of blobs) {
    const bmp = await createImageBitmap(blob);
    const off = document.createElement("canvas");
    off.width = bmp.width; off.height = bmp.height;
    const ctx = off.getContext("2d");
    ctx.drawImage(bmp, 0, 0);
    S.images.push(ctx.getImageData(0, 0, bmp.width, bmp.height));
  }
  buildPanels();
  resetView();
  show("study");
  S.shownAt = performance.now();
  viewer.dataset.case = String(caseNo);
  viewer.dataset.ready = "1";
}

function panelSize() {
  const room = Math.max(200, (window.innerWidth - 40) / (S.k + 1) - 30);
  return Math.floor(Math.min(420, room));
}

function buildPanels() {
  const viewer = $("viewer");
  viewer.replaceChildren();
  const size = panelSize();
  S.canvases = [];
  for (let p = 0; p <= S.k; p++) {
    const fig = document.createElement("figure");
    fig.className = p === 0 ? "panel reference" : "panel candidate";
    fig.dataset.position = String(p);
    const cap = document.createElement("figcaption");
    const name = document.createElement("span");
    name.textContent = p === 0 ? "Reference (fully sampled)" : `Candidate ${p}`;
    cap.append(name);
    if (p > 0) {
      const btn = document.createElement("button");
      btn.type = "button"; btn.className = "choose"; btn.dataset.position = String(p);
      btn.textContent = `Choose ${p}`;
      btn.addEventListener("click", () => select(p));
      cap.append(btn);
    }
    const canvas = document.createElement("canvas");
    canvas.width = size; canvas.height = size;
    attachPointer(canvas);
    fig.append(cap, canvas);
    viewer.append(fig);
    S.canvases.push(canvas);
  }
}

function select(p) {
  if (!(p >= 1 && p <= S.k)) return;
  S.selected = p;
  for (const fig of document.querySelectorAll(".panel.candidate")) {
    fig.classList.toggle("selected", Number(fig.dataset.position) === p);
  }
  $("viewer").dataset.selected = String(p);
  $("submit").disabled = false;
}

async function submit() {
  if (S.selected === null || S.busy) return;
  S.busy = true; $("submit").disabled = true;
  const seconds = Math.round((performance.now() - S.shownAt)) / 1000;
  try {
    const state = await api("POST", "/api/answer",
                            { case: S.caseNo, choice: S.selected, comment: $("comment").value, seconds });
    await route(state);
  } catch (err) {
    if (!sessionEnded(err)) {
      $("msg").textContent = err.message;
      if (err.code === "answered") { await route(await api("GET", "/api/state")); }
      else { $("submit").disabled = false; }
    }
  } finally {
    S.busy = false;
  }
}
$("submit").addEventListener("click", submit);

// ------------------------------------------------------------------------- view: zoom, pan, W/L
function resetView() {
  const img = S.images[0];
  S.zoom = 1; S.cx = img.width / 2; S.cy = img.height / 2;
  const [lo, hi] = S.defaults;
  setWindow(hi - lo, (hi + lo) / 2);
}

function setWindow(win, lev) {
  S.win = Math.min(255, Math.max(1, win)); S.lev = Math.min(255, Math.max(0, lev));
  $("win").value = String(Math.round(S.win)); $("lev").value = String(Math.round(S.lev));
  const lo = S.lev - S.win / 2;
  const lut = new Uint8ClampedArray(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.round(((v - lo) / S.win) * 255);
  S.windowed = S.images.map((src) => {
    const out = new ImageData(src.width, src.height);
    for (let i = 0; i < src.data.length; i += 4) {
      const g = lut[src.data[i]];
      out.data[i] = g; out.data[i + 1] = g; out.data[i + 2] = g; out.data[i + 3] = 255;
    }
    const c = document.createElement("canvas");
    c.width = src.width; c.height = src.height;
    c.getContext("2d").putImageData(out, 0, 0);
    return c;
  });
  draw();
}

function scale() { return (S.zoom * S.canvases[0].width) / S.images[0].width; }

function draw() {
  if (!S.canvases) return;
  const s = scale();
  S.canvases.forEach((canvas, p) => {
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.imageSmoothingEnabled = S.zoom < 4;
    ctx.setTransform(s, 0, 0, s, canvas.width / 2 - S.cx * s, canvas.height / 2 - S.cy * s);
    ctx.drawImage(S.windowed[p], 0, 0);
  });
  const v = $("viewer").dataset;
  v.zoom = S.zoom.toFixed(3); v.cx = S.cx.toFixed(2); v.cy = S.cy.toFixed(2);
  v.window = S.win.toFixed(1); v.level = S.lev.toFixed(1);
}

function attachPointer(canvas) {
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    const s = scale();
    const ix = S.cx + (e.clientX - r.left - canvas.width / 2) / s;   // image point under the cursor
    const iy = S.cy + (e.clientY - r.top - canvas.height / 2) / s;
    S.zoom = Math.min(16, Math.max(1, S.zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
    const t = scale();
    S.cx = ix - (e.clientX - r.left - canvas.width / 2) / t;        // keep it under the cursor
    S.cy = iy - (e.clientY - r.top - canvas.height / 2) / t;
    draw();
  }, { passive: false });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    const wl = e.shiftKey || e.button === 2;
    let x = e.clientX, y = e.clientY;
    const move = (m) => {
      const dx = m.clientX - x, dy = m.clientY - y;
      x = m.clientX; y = m.clientY;
      if (wl) { setWindow(S.win + dx, S.lev - dy); }
      else { const s = scale(); S.cx -= dx / s; S.cy -= dy / s; draw(); }
    };
    const up = () => { canvas.removeEventListener("pointermove", move); canvas.removeEventListener("pointerup", up); };
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", up);
  });
}

$("win").addEventListener("input", (e) => setWindow(Number(e.target.value), S.lev));
$("lev").addEventListener("input", (e) => setWindow(S.win, Number(e.target.value)));
$("reset").addEventListener("click", resetView);

document.addEventListener("keydown", (e) => {
  const typing = e.target.closest("textarea, input:not([type=range])");  // digits in the comment choose nothing
  if ($("study").hidden || typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[1-9]$/.test(e.key)) { select(Number(e.key)); e.preventDefault(); }
  else if (e.key === "Enter") { submit(); e.preventDefault(); }
  else if (e.key === "0" || e.key === "r") { resetView(); }
});

// ------------------------------------------------------------------------------------------- start
setInterval(() => { if (S.token && !$("study").hidden) api("POST", "/api/ping", {}).catch(sessionEnded); }, 30000);

(async () => {
  if (!S.token) { show("login"); return; }
  try { await route(await api("GET", "/api/state")); }
  catch (err) { if (!sessionEnded(err)) { show("login"); $("login-msg").textContent = err.message; } }
})();

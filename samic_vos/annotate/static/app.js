// SAMBOX page: draws the image and SAM's mask on a canvas, sends clicks to the server.
// Coordinates sent to the server are (x, y) image pixels, pixel centres at integers (SAM's
// convention); on the canvas the pixel (x, y) covers [x, x + 1) x [y, y + 1).
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

const app = {
  images: [],
  saved: {},      // image name -> "objects" | "nothing_here" | null (the server's listing)
  broken: {},     // image name -> why it cannot be opened
  classes: [],    // [{name, color}]: number key k labels with class k (--classes)
  hidden: new Set(),  // ids of the current image's objects not drawn (H; the page's only)
  index: 0,
  view: null,     // the server's answer for the current image
  image: null,    // ImageBitmap of the current image
  composed: null, // OffscreenCanvas: the server's mask (palette colours, background transparent)
  mask: null,     // the mask overlay as drawn (composed, hidden objects and class colours applied)
  scale: 1, ox: 0, oy: 0,
  drag: null,     // {button, x0, y0, x, y, moved, pan}
  tool: "prompt", // "prompt" (clicks and boxes) | "brush" | "eraser" (B / X)
  stroke: null,   // the brush or eraser stroke being drawn: [[x, y], ...] image pixels
  strokeParts: 0, // parts of the drag being drawn already sent (a drag over MAX_STROKE_POINTS)
  space: false,
  queue: Promise.resolve(),
  painters: [],   // (ctx, px) => void: drawn over the objects (suggest.js: SAMIC's points)
  opened: [],     // (view) => void: called when an image has been opened
};

// What the browser test reads: readiness, click-to-drawn latencies and the drawn mask.
window.sambox = {
  ready: false,
  pending: 0,
  latencies: [],
  // The server's mask as the page holds it (answers patch it), as a PNG data URL.
  async composedPng() {
    if (!app.composed) return null;
    const blob = await app.composed.convertToBlob({type: "image/png"});
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.readAsDataURL(blob);
    });
  },
  lastExport: null,  // the server's answer to the last export (folder, file, images)
  // The alpha (0..255) of the drawn overlay at image pixel (x, y): 0 where nothing is shown.
  overlayAlpha(x, y) {
    return window.sambox.overlayPixel(x, y)[3];
  },
  // The drawn overlay's [R, G, B, A] at image pixel (x, y).
  overlayPixel(x, y) {
    if (!app.mask) return [0, 0, 0, 0];
    const scratch = new OffscreenCanvas(app.mask.width, app.mask.height).getContext("2d");
    scratch.drawImage(app.mask, 0, 0);
    return Array.from(scratch.getImageData(x, y, 1, 1).data);
  },
  view: () => app.view,
  imageToClient(x, y) {
    const r = canvas.getBoundingClientRect();
    return [r.left + app.ox + (x + 0.5) * app.scale, r.top + app.oy + (y + 0.5) * app.scale];
  },
};

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "muted error" : "muted";
}

// The page's requests carry the launch's token in its cookie (set when the page was opened
// with the URL that samic-vos printed); POSTs are JSON, which the server requires.
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({detail: response.statusText}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    const err = new Error(detail);
    err.stale = response.status === 409;  // another tab changed the image: reload it
    throw err;
  }
  return data;
}

// The current image as the server has it (after another tab changed it).
async function reload() {
  const name = app.images[app.index];
  const view = await api(`/api/state?name=${encodeURIComponent(name)}`);
  if (name === app.images[app.index]) await show(view);
}

// Requests run one after another, in click order.
function enqueue(job) {
  window.sambox.pending += 1;
  app.queue = app.queue.then(job).catch(async (err) => {
    status(err.message, true);
    if (err.stale) await reload().catch((again) => status(again.message, true));
  }).finally(() => {
    window.sambox.pending -= 1;
  });
  return app.queue;
}

// What a request changing the image sends besides: the revision of the state shown, so that
// a page that another tab made stale is refused instead of adding to the other's objects; and
// the token of the mask held, so that the answer carries only the box that changed.
function current() {
  const view = app.view;
  return {image: app.images[app.index], revision: view ? view.revision : null,
    mask_token: view ? view.mask_token : null};
}

// The server's mask (app.composed) from an answer: the whole mask (mask_png), or the box of
// the mask held that changed (mask_patch; box null: nothing changed). Applying one twice
// changes nothing (toggling an object's visibility shows the same answer again).
async function compose(view) {
  if (view.mask_png !== undefined) {
    const bitmap = await bitmapFromBase64(view.mask_png);
    app.composed = new OffscreenCanvas(bitmap.width, bitmap.height);
    app.composed.getContext("2d").drawImage(bitmap, 0, 0);
  } else if (view.mask_patch.box) {
    const [x0, y0, x1, y1] = view.mask_patch.box;
    const bitmap = await bitmapFromBase64(view.mask_patch.png);
    const scratch = app.composed.getContext("2d");
    scratch.clearRect(x0, y0, x1 - x0, y1 - y0);
    scratch.drawImage(bitmap, x0, y0);
  }
}

// The mask as shown: hidden objects transparent, objects of a class in its colour.
async function overlay(bitmap) {
  const changes = app.view.objects
    .map((o) => ({from: o.color, to: app.hidden.has(o.id) ? null : rgbOf(o)}))
    .filter((c) => c.to === null || c.to.some((v, i) => v !== c.from[i]));
  if (changes.length === 0) return bitmap;
  const scratch = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
  scratch.drawImage(bitmap, 0, 0);
  const image = scratch.getImageData(0, 0, bitmap.width, bitmap.height);
  const px = image.data;
  for (let i = 0; i < px.length; i += 4) {
    if (!px[i + 3]) continue;
    const change = changes.find(({from: [r, g, b]}) => px[i] === r && px[i + 1] === g && px[i + 2] === b);
    if (!change) continue;
    if (change.to === null) px[i + 3] = 0;
    else [px[i], px[i + 1], px[i + 2]] = change.to;
  }
  return createImageBitmap(image);
}

// Show or hide object `id` (mask and points; the saved files are not affected).
async function toggleHidden(id) {
  if (app.hidden.has(id)) app.hidden.delete(id);
  else app.hidden.add(id);
  await show(app.view);
}

async function bitmapFromBase64(png) {
  // A plain loop: Uint8Array.from with a callback per character took ~6 ms for a 50 kB mask.
  const text = atob(png);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  return createImageBitmap(new Blob([bytes], {type: "image/png"}));
}

async function show(view, started) {
  app.saved[view.image] = view.saved;
  if (app.view && app.view.image !== view.image) app.hidden.clear();
  app.view = view;
  await compose(view);
  app.mask = await overlay(app.composed);
  draw();
  if (started !== undefined) {
    const ms = performance.now() - started;
    window.sambox.latencies.push(ms);
    status(`mask drawn ${ms.toFixed(0)} ms after the click (server ${view.decode_ms.toFixed(0)} ms)`);
  }
  renderPanel();
}

function fit() {
  if (!app.image) return;
  const {width, height} = canvas;
  app.scale = Math.min(width / app.image.width, height / app.image.height) * 0.98;
  app.ox = (width - app.image.width * app.scale) / 2;
  app.oy = (height - app.image.height * app.scale) / 2;
}

function resize() {
  const r = canvas.getBoundingClientRect();
  canvas.width = Math.round(r.width);
  canvas.height = Math.round(r.height);
  fit();
  draw();
}

// An object's colour: its class's when its label is a class, else its palette colour.
function rgbOf(obj) {
  const cls = app.classes.find((c) => c.name === obj.label);
  return cls ? cls.color : obj.color;
}

function color(obj, alpha = 1) {
  const [r, g, b] = rgbOf(obj);
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

// Number key k: class k for the active object if it has no prompt and no label yet, else
// for a new object.
function useClass(k) {
  const cls = app.classes[k - 1];
  if (!cls) return;
  const view = app.view;
  const active = view && view.active ? view.objects.find((o) => o.id === view.active.object) : null;
  const fresh = active && !active.label && active.instances.every((i) => i.steps.length === 0);
  act(fresh ? {type: "label", object: active.id, label: cls.name}
    : {type: "new_object", label: cls.name});
}

function renderClasses() {
  const list = $("classes");
  list.replaceChildren();
  app.classes.forEach((cls, k) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${cls.color.join(", ")})`;
    item.append(swatch, `${k + 1} ${cls.name}`);
    item.title = `key ${k + 1}: label the object "${cls.name}"`;
    item.addEventListener("click", () => useClass(k + 1));
    list.append(item);
  });
}

function draw() {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!app.image) return;
  ctx.setTransform(app.scale, 0, 0, app.scale, app.ox, app.oy);
  ctx.imageSmoothingEnabled = app.scale < 2;
  ctx.drawImage(app.image, 0, 0);
  if (app.mask) {
    ctx.globalAlpha = 0.55;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(app.mask, 0, 0);
    ctx.globalAlpha = 1;
  }
  const view = app.view;
  if (view) {
    const px = 1 / app.scale;
    for (const obj of view.objects) {
      if (app.hidden.has(obj.id)) continue;
      obj.instances.forEach((inst, k) => {
        const active = view.active && view.active.object === obj.id && view.active.instance === k;
        for (const step of inst.steps) {
          if (step.kind === "box") {
            const [x0, y0, x1, y1] = step.coords;
            ctx.strokeStyle = color(obj);
            ctx.lineWidth = (active ? 3 : 1.5) * px;
            ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0);
          }
        }
        for (const step of inst.steps) {
          if (step.kind !== "point") continue;
          const [x, y] = step.coords;
          // In the object's colour; a negative point has a red ring and a minus sign.
          const r = (active ? 6 : 4.5) * px;
          ctx.beginPath();
          ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
          ctx.fillStyle = color(obj);
          ctx.fill();
          ctx.lineWidth = (step.positive ? 1.5 : 2.5) * px;
          ctx.strokeStyle = step.positive ? (active ? "#fff" : "#000") : "#ff4136";
          if (step.suggested) ctx.strokeStyle = "#ffdc00";  // an accepted SAMIC point
          ctx.stroke();
          if (!step.positive) {
            ctx.beginPath();
            ctx.moveTo(x + 0.5 - r * 0.6, y + 0.5);
            ctx.lineTo(x + 0.5 + r * 0.6, y + 0.5);
            ctx.stroke();
          }
        }
      });
    }
    for (const paint of app.painters) paint(ctx, px);
  }
  if (app.stroke) {
    // The stroke as the server will paint it: pixel centres within the radius of the line.
    const active = view && view.active ? view.objects.find((o) => o.id === view.active.object) : null;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = 2 * brushRadius();
    ctx.strokeStyle = app.tool === "eraser" ? "rgba(0, 0, 0, 0.6)" : color(active || {color: [255, 255, 255]}, 0.6);
    ctx.beginPath();
    app.stroke.forEach(([x, y], k) => (k ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
    if (app.stroke.length === 1) ctx.lineTo(app.stroke[0][0] + 0.5, app.stroke[0][1] + 0.5);
    ctx.stroke();
  }
  const drag = app.drag;
  if (drag && drag.moved && !drag.pan && !drag.alt && !app.stroke) {
    const [ax, ay] = toImage(drag.x0, drag.y0);
    const [bx, by] = toImage(drag.x, drag.y);
    ctx.setLineDash([6 / app.scale, 4 / app.scale]);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 1.5 / app.scale;
    ctx.strokeRect(Math.min(ax, bx) + 0.5, Math.min(ay, by) + 0.5, Math.abs(bx - ax), Math.abs(by - ay));
    ctx.setLineDash([]);
  }
}

function renderPanel() {
  const view = app.view;
  $("progress").textContent = view ? `${view.annotated} / ${view.total}` : "";
  const saved = {objects: " · saved", nothing_here: " · nothing here"};
  $("image-name").textContent = view
    ? `${view.image} (${app.index + 1} of ${app.images.length})${view.dirty ? " · unsaved" : saved[view.saved] || ""}`
    : "";
  const iou = view ? view.iou : null;
  $("score").textContent = iou === null || iou === undefined ? "–" : iou.toFixed(3);
  $("score-bar").style.width = `${Math.round(100 * (view && view.confidence ? view.confidence : 0))}%`;
  const active = view && view.active ? view.objects.find((o) => o.id === view.active.object) : null;
  $("object-score").textContent = active ? active.confidence.toFixed(3) : "–";
  $("undo").disabled = !(view && view.can_undo);
  $("redo").disabled = !(view && view.can_redo);
  $("prev").disabled = app.index === 0;
  $("next").disabled = app.index >= app.images.length - 1;
  renderImageList();
  const list = $("objects");
  list.replaceChildren();
  for (const obj of view ? view.objects : []) {
    const item = document.createElement("li");
    item.className = active && active.id === obj.id ? "active" : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(obj);
    const label = document.createElement("input");
    label.className = "object-label";
    label.value = obj.label || "";
    label.placeholder = `object ${obj.id}`;
    label.addEventListener("change", () =>
      act({type: "label", object: obj.id, label: label.value || null}));
    const score = document.createElement("span");
    score.className = "muted";
    score.textContent = ` ${obj.confidence.toFixed(3)}${obj.edits ? ` · ${obj.edits} edit${obj.edits > 1 ? "s" : ""}` : ""}`;
    const instances = document.createElement("div");
    instances.className = "instances";
    obj.instances.forEach((inst, k) => {
      const chip = document.createElement("span");
      const isActive = view.active && view.active.object === obj.id && view.active.instance === k;
      chip.className = isActive ? "active" : "";
      chip.textContent = `#${k + 1} · ${inst.steps.length} · ${inst.iou === null ? "–" : inst.iou.toFixed(2)}`;
      chip.title = "instance: prompts · SAM's predicted IoU";
      chip.addEventListener("click", () => act({type: "select", object: obj.id, instance: k}));
      instances.append(chip);
    });
    const remove = document.createElement("button");
    remove.className = "delete-object";
    remove.textContent = "×";
    remove.title = "delete this object (undoable)";
    remove.addEventListener("click", () => act({type: "delete_object", object: obj.id}));
    const eye = document.createElement("button");
    eye.className = "hide-object";
    eye.textContent = app.hidden.has(obj.id) ? "○" : "◉";
    eye.title = "hide / show this object (H: the active one)";
    eye.addEventListener("click", () => enqueue(() => toggleHidden(obj.id)));
    item.append(swatch, label, score, remove, eye, instances);
    list.append(item);
  }
}

// Every image with its status; a click opens it.
function renderImageList() {
  const list = $("image-list");
  list.replaceChildren();
  const marks = {objects: "✓", nothing_here: "∅"};
  app.images.forEach((name, k) => {
    const item = document.createElement("li");
    const status = app.broken[name] ? "broken" : app.saved[name] || "todo";
    item.className = `${status}${k === app.index ? " current" : ""}`;
    item.textContent = `${app.broken[name] ? "!" : marks[status] || "·"} ${name}`;
    item.title = app.broken[name] || {objects: "saved", nothing_here: "done, nothing here",
      todo: "not saved yet"}[status];
    item.addEventListener("click", () => open(k));
    list.append(item);
  });
  const current = list.children[app.index];
  if (current) current.scrollIntoView({block: "nearest"});
}

// The point drawn nearest to client position (cx, cy), within 8 pixels on screen, as the
// delete_step action that removes it; null if none.
function pointAt(cx, cy) {
  let best = null;
  let bestDistance = 8;
  for (const obj of app.view ? app.view.objects : []) {
    obj.instances.forEach((inst, k) => {
      inst.steps.forEach((step, j) => {
        if (step.kind !== "point") return;
        const [px, py] = window.sambox.imageToClient(step.coords[0], step.coords[1]);
        const distance = Math.hypot(px - cx, py - cy);
        if (distance <= bestDistance) {
          bestDistance = distance;
          best = {type: "delete_step", object: obj.id, instance: k, step: j};
        }
      });
    });
  }
  return best;
}

function act(action, started) {
  return enqueue(async () => {
    const request = current();  // read when the request runs: the state it will change
    const view = await api("/api/action", {...request, action});
    if (request.image === app.images[app.index]) await show(view, started);
  });
}

const SAVED = {
  objects: (name) => `saved ${name}`,
  nothing_here: (name) => `marked ${name}: done, nothing here`,
  removed: (name) => `saved ${name}: no object left, its annotation removed`,
};

// Save the image; nothingHere: the explicit mark of an image without objects (E).
function save(nothingHere = false) {
  return enqueue(async () => {
    const request = current();
    const view = await api("/api/save", {...request, nothing_here: nothingHere});
    if (request.image === app.images[app.index]) await show(view);
    status(view.wrote ? SAVED[view.wrote](request.image)
      : `nothing to save on ${request.image}: click an object, or press E to mark it "nothing here"`);
  });
}

// Export every saved image (the current one saved first) with `samic-vos export`'s writers
// into ANNOTATIONS_DIR/exports/<format>/; the status line says where it went.
function exportAnnotations() {
  const [format, cocoMasks] = $("export-format").value.split(":");
  return enqueue(async () => {
    if (app.view && app.view.dirty) {
      const request = current();
      const view = await api("/api/save", request);
      if (request.image === app.images[app.index]) await show(view);
    }
    const done = await api("/api/export", {format, coco_masks: cocoMasks});
    window.sambox.lastExport = done;
    status(`exported ${done.images} saved image${done.images === 1 ? "" : "s"} as ${format} to ${done.folder}`);
  });
}

// Go to image `index`; one that cannot be opened is reported and passed, in the direction
// of travel (`step`).
async function open(index, step = index >= app.index ? 1 : -1) {
  if (index < 0 || index >= app.images.length) return;
  await enqueue(async () => {
    // Leaving an image saves it (after every click queued before, hence inside the queue).
    if (app.view && app.view.dirty) await api("/api/save", current());
    const name = app.images[index];
    $("loading").hidden = false;
    $("loading").textContent = `encoding ${name}…`;
    try {
      const [blob, view] = await Promise.all([
        fetch(`/api/image?name=${encodeURIComponent(name)}`).then(async (r) => {
          if (!r.ok) {
            const data = await r.json().catch(() => ({detail: r.statusText}));
            throw new Error(data.detail);
          }
          return r.blob();
        }),
        api(`/api/state?name=${encodeURIComponent(name)}`),
      ]);
      app.image = await createImageBitmap(blob);
      app.index = index;
      fit();
      await show(view);
      $("loading").hidden = true;
      for (const hook of app.opened) hook(view);
    } catch (err) {
      app.broken[name] = err.message;
      renderImageList();
      status(`cannot open ${name}: ${err.message}`, true);
      const next = index + step;
      if (next >= 0 && next < app.images.length && next !== app.index) {
        open(next, step);  // queued after this job
      } else if (app.image) {
        $("loading").hidden = true;  // stay on the image shown
      } else {
        $("loading").textContent = `cannot open ${name}: ${err.message}`;
      }
    }
    window.sambox.ready = true;
  });
}

function toImage(clientX, clientY) {
  const r = canvas.getBoundingClientRect();
  return [(clientX - r.left - app.ox) / app.scale - 0.5, (clientY - r.top - app.oy) / app.scale - 0.5];
}

function insideImage(x, y) {
  return app.image && x >= 0 && y >= 0 && x <= app.image.width - 1 && y <= app.image.height - 1;
}

function clamp(v, hi) {
  return Math.min(Math.max(v, 0), hi);
}

// The brush and eraser (B, X): a left drag paints on the active object's mask; the stroke goes
// to the server as one "paint" action (points thinned to a quarter of the radius, rounded to
// 0.01 px), which undo takes back whole. A longer drag goes in parts of MAX_STROKE_POINTS, the
// parts after the first marked "continues": the server joins them into one step.
const MAX_STROKE_POINTS = 2000;  // the server's limit per stroke (data/mask_edits.py)

function brushRadius() {
  const r = Number($("radius").value);
  return Number.isFinite(r) && r > 0 ? Math.min(r, 200) : 5;
}

function setTool(tool) {
  app.tool = app.tool === tool ? "prompt" : tool;
  $("brush").classList.toggle("on", app.tool === "brush");
  $("eraser").classList.toggle("on", app.tool === "eraser");
  canvas.classList.toggle("painting", app.tool !== "prompt");
  status(app.tool === "prompt" ? "clicks and boxes prompt SAM"
    : `${app.tool}: drag on the image to ${app.tool === "brush" ? "add to" : "take from"} the active object's mask`);
}

function strokePoint(clientX, clientY) {
  const [x, y] = toImage(clientX, clientY);
  const to = (v, hi) => Math.round(clamp(v, hi) * 100) / 100;
  return [to(x, app.image.width - 1), to(y, app.image.height - 1)];
}

function addStrokePoint(clientX, clientY) {
  const point = strokePoint(clientX, clientY);
  const last = app.stroke[app.stroke.length - 1];
  if (Math.hypot(point[0] - last[0], point[1] - last[1]) < Math.max(0.5, brushRadius() / 4)) return;
  app.stroke.push(point);
  if (app.stroke.length >= MAX_STROKE_POINTS) {
    sendStroke();
    app.stroke = [point];
  }
}

function sendStroke(started) {
  const view = app.view;
  if (!view || !view.active) {
    status("no object to paint on: click a point or press C for a new object first", true);
    return;
  }
  act({type: "paint", object: view.active.object, strokes: [app.stroke], radius: brushRadius(),
    erase: app.tool === "eraser", continues: app.strokeParts > 0}, started);
  app.strokeParts += 1;
}

canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("pointerdown", (e) => {
  canvas.setPointerCapture(e.pointerId);
  app.drag = {button: e.button, x0: e.clientX, y0: e.clientY, x: e.clientX, y: e.clientY,
    moved: false, pan: e.button === 1 || app.space, shift: e.shiftKey, alt: e.altKey};
  if (app.tool !== "prompt" && e.button === 0 && !app.drag.pan && app.image) {
    app.stroke = [strokePoint(e.clientX, e.clientY)];
    app.strokeParts = 0;  // parts of this drag sent so far
    draw();
  }
});
canvas.addEventListener("pointermove", (e) => {
  const drag = app.drag;
  if (!drag) return;
  if (app.stroke) {
    addStrokePoint(e.clientX, e.clientY);
    draw();
    return;
  }
  if (Math.hypot(e.clientX - drag.x0, e.clientY - drag.y0) > 4) drag.moved = true;
  if (drag.moved && drag.button === 2) drag.pan = true;
  if (drag.pan) {
    app.ox += e.clientX - drag.x;
    app.oy += e.clientY - drag.y;
  }
  drag.x = e.clientX;
  drag.y = e.clientY;
  draw();
});
canvas.addEventListener("pointerup", (e) => {
  const drag = app.drag;
  app.drag = null;
  if (!drag || drag.pan || !app.image) return draw();
  const started = performance.now();
  if (app.stroke) {
    addStrokePoint(e.clientX, e.clientY);
    sendStroke(started);
    app.stroke = null;
    return draw();
  }
  if (app.tool !== "prompt") return draw();
  const refine = $("refine").checked;
  if (drag.alt) {  // Alt+click on a point deletes it, Alt+drag moves it
    const hit = pointAt(drag.x0, drag.y0);
    if (hit && drag.moved) {
      const [x, y] = toImage(e.clientX, e.clientY);
      const w = app.image.width - 1, h = app.image.height - 1;
      const to = (v, hi) => Math.round(clamp(v, hi) * 100) / 100;
      act({...hit, type: "move_step", x: to(x, w), y: to(y, h)}, started);
    } else if (hit) {
      act(hit, started);
    }
    return draw();
  }
  if (drag.moved && drag.button === 0) {
    const [ax, ay] = toImage(drag.x0, drag.y0);
    const [bx, by] = toImage(e.clientX, e.clientY);
    const w = app.image.width - 1, h = app.image.height - 1;
    act({type: "box", box: [clamp(ax, w), clamp(ay, h), clamp(bx, w), clamp(by, h)], refine}, started);
    return;
  }
  const [x, y] = toImage(e.clientX, e.clientY);
  if (!insideImage(x, y)) return draw();
  const positive = drag.button === 0 && !drag.shift && !e.shiftKey;
  act({type: "point", x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100, positive, refine}, started);
});
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const r = canvas.getBoundingClientRect();
  const cx = e.clientX - r.left, cy = e.clientY - r.top;
  const factor = Math.exp(-e.deltaY * 0.0015);
  app.ox = cx - (cx - app.ox) * factor;
  app.oy = cy - (cy - app.oy) * factor;
  app.scale *= factor;
  draw();
}, {passive: false});

function toggleHelp(show) {
  $("help").hidden = show === undefined ? !$("help").hidden : !show;
}

function newObject() {
  act({type: "new_object", label: $("label").value.trim() || null});
  $("label").value = "";
}

document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") {
    if (e.key === "Enter" && e.target.id === "label") newObject();
    if (e.key === "Escape") e.target.blur();
    return;
  }
  const key = e.key.toLowerCase();
  if (app.stroke) return;  // no other step while a brush drag is drawn (it would end the drag)
  if (e.ctrlKey || e.metaKey) {
    if (key === "z") act({type: e.shiftKey ? "redo" : "undo"});
    else if (key === "y") act({type: "redo"});
    else if (key === "s") save();
    else return;
    e.preventDefault();
    return;
  }
  const keys = {
    n: () => act({type: "new_instance"}),
    c: newObject,
    a: () => open(app.index - 1),
    arrowleft: () => open(app.index - 1),
    d: () => open(app.index + 1),
    arrowright: () => open(app.index + 1),
    s: () => save(),
    e: () => save(true),
    b: () => setTool("brush"),
    x: () => setTool("eraser"),
    "[": () => { $("radius").value = Math.max(0.5, brushRadius() / 1.25).toFixed(1); },
    "]": () => { $("radius").value = Math.min(200, brushRadius() * 1.25).toFixed(1); },
    r: () => act({type: "reset"}),
    h: () => { if (app.view && app.view.active) enqueue(() => toggleHidden(app.view.active.object)); },
    f: () => { $("refine").checked = !$("refine").checked; },
    "0": () => { fit(); draw(); },
    "?": () => toggleHelp(),
    escape: () => toggleHelp(false),
    " ": () => { app.space = true; },
  };
  if (keys[key]) {
    e.preventDefault();
    keys[key]();
  } else if (/^[1-9]$/.test(key)) {
    e.preventDefault();
    useClass(Number(key));
  }
});
document.addEventListener("keyup", (e) => { if (e.key === " ") app.space = false; });
$("help").addEventListener("click", () => toggleHelp(false));
$("help-button").addEventListener("click", () => toggleHelp());
$("prev").addEventListener("click", () => open(app.index - 1));
$("next").addEventListener("click", () => open(app.index + 1));
$("undo").addEventListener("click", () => act({type: "undo"}));
$("redo").addEventListener("click", () => act({type: "redo"}));
$("new-instance").addEventListener("click", () => act({type: "new_instance"}));
$("new-object").addEventListener("click", newObject);
$("reset").addEventListener("click", () => act({type: "reset"}));
$("save").addEventListener("click", () => save());
$("export").addEventListener("click", exportAnnotations);
$("brush").addEventListener("click", () => setTool("brush"));
$("eraser").addEventListener("click", () => setTool("eraser"));
$("nothing-here").addEventListener("click", () => save(true));
window.addEventListener("resize", resize);
window.addEventListener("beforeunload", () => {
  if (app.view && app.view.dirty) {
    // keepalive: the request outlives the page; JSON, like every write the server takes.
    fetch("/api/save", {method: "POST", keepalive: true, headers: {"Content-Type": "application/json"},
      body: JSON.stringify(current())});
  }
});

(async () => {
  try {
    const listing = await api("/api/images");
    app.images = listing.images.map((i) => i.name);
    for (const image of listing.images) app.saved[image.name] = image.saved;
    app.classes = listing.classes;
    renderClasses();
    const first = listing.images.findIndex((i) => !i.saved);
    resize();
    await open(first < 0 ? 0 : first);
  } catch (err) {
    status(err.message, true);
  }
})();

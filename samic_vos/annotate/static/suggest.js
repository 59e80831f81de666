// SAMIC's suggestions on the SAMBOX page (after app.js, whose globals it uses): the progress
// of SAMIC's learning, the suggested points drawn apart (hollow yellow rings, not yet clicks),
// accept (Enter: one undoable step) or reject (Esc), the automatic mode, and the clicks per
// image with and without suggestions. The server's side is annotate/suggest.py.
"use strict";

const suggestions = {
  status: null,     // GET /api/suggest
  pending: null,    // {image, objects: [{object, label, points, scores}], ms}: shown, not accepted
  auto: localStorage.getItem("sambox-auto-suggest") === "1",
  polling: null,
};

window.sambox.suggestion = () => suggestions.pending;
window.sambox.suggestStatus = () => suggestions.status;

function perImage(group, what) {
  if (!group.images) return `– ${what}`;
  return `${group.clicks_per_image.toFixed(1)} ${what} (${group.images} image${group.images > 1 ? "s" : ""})`;
}

function renderSuggest() {
  const s = suggestions.status;
  $("suggest-panel").hidden = !s || s.phase === "off";
  if (!s || s.phase === "off") return;
  $("suggest-status").textContent = s.message;
  $("suggest").disabled = !s.learned_from;
  $("accept").disabled = $("reject").disabled = !suggestions.pending;
  $("clicks").textContent = `clicks per image: ${perImage(s.clicks.with, "with suggestions")}`
    + ` vs ${perImage(s.clicks.without, "without")}`;
}

async function pollSuggest() {
  try {
    const before = suggestions.status;
    suggestions.status = await api("/api/suggest");
    renderSuggest();
    const s = suggestions.status;
    if (s.phase === "off") return clearInterval(suggestions.polling);
    // The first network became ready while an empty image is open: suggest on it (auto).
    if (s.learned_from && !(before && before.learned_from)) autoSuggest();
  } catch (err) {
    status(err.message, true);
  }
}

// Ask SAMIC for the current image's prompts; they are drawn, not yet part of the image.
function suggest() {
  return enqueue(async () => {
    const image = app.images[app.index];
    try {
      const found = await api("/api/suggest", {image});
      if (image !== app.images[app.index]) return;
      suggestions.pending = found;
      const points = found.objects.reduce((n, o) => n + o.points.length, 0);
      status(points
        ? `SAMIC suggests ${points} point(s) on ${found.objects.length} object(s) in ${found.ms.toFixed(0)} ms: Enter accepts, Esc drops`
        : "SAMIC found nothing to suggest here");
      if (!points) suggestions.pending = null;
    } catch (err) {
      status(err.message, !/no suggestion yet/.test(err.message));
    }
    draw();
    renderSuggest();
  });
}

function accept() {
  const found = suggestions.pending;
  if (!found || found.image !== app.images[app.index]) return;
  suggestions.pending = null;
  renderSuggest();
  const objects = found.objects.map(({object, label, points}) => ({object, label, points}));
  act({type: "accept_suggestion", objects});
}

function reject() {
  if (!suggestions.pending) return;
  suggestions.pending = null;
  status("SAMIC's suggestion dropped");
  draw();
  renderSuggest();
}

function autoSuggest() {
  const view = app.view;
  if (suggestions.auto && view && !view.saved && view.objects.length === 0 && !suggestions.pending) {
    suggest();
  }
}

app.painters.push((ctx, px) => {
  const found = suggestions.pending;
  if (!found || found.image !== app.images[app.index]) return;
  ctx.setLineDash([3 * px, 2 * px]);
  for (const obj of found.objects) {
    for (const [x, y] of obj.points) {
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, 7 * px, 0, 2 * Math.PI);
      ctx.lineWidth = 2.5 * px;
      ctx.strokeStyle = "#ffdc00";
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
});

app.opened.push(() => {
  suggestions.pending = null;
  renderSuggest();
  autoSuggest();
});

document.addEventListener("keydown", (e) => {
  if (e.target instanceof HTMLInputElement && e.target.type !== "checkbox") return;
  if (e.ctrlKey || e.metaKey || e.altKey || !suggestions.status || suggestions.status.phase === "off") return;
  const keys = {g: suggest, enter: accept, escape: reject};
  const handler = keys[e.key.toLowerCase()];
  if (handler) {
    e.preventDefault();
    handler();
  }
});
// A clicked button gives the focus back: Enter then accepts instead of clicking it again.
$("suggest").addEventListener("click", (e) => { e.target.blur(); suggest(); });
$("accept").addEventListener("click", (e) => { e.target.blur(); accept(); });
$("reject").addEventListener("click", (e) => { e.target.blur(); reject(); });
$("auto-suggest").checked = suggestions.auto;
$("auto-suggest").addEventListener("change", (e) => {
  suggestions.auto = e.target.checked;
  localStorage.setItem("sambox-auto-suggest", suggestions.auto ? "1" : "0");
  autoSuggest();
});
pollSuggest();
suggestions.polling = setInterval(pollSuggest, 1000);

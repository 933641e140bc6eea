// ZooServe demo page: plain JavaScript over the public endpoints, no build step.
"use strict";

const KEY_STORAGE = "zooserve-api-key";

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// What a status means to a person, before the server's own words.
const STATUS_WORDS = {
  401: "This server needs an API key: enter it at the top of the page.",
  408: "The request took too long to send.",
  413: "That is too large for the server.",
  415: "That kind of file is not accepted.",
  429: "The server is busy: try again in a moment.",
  503: "The service is not available right now: try again shortly.",
};

// "houses.0.Latitude: Input should be ..." -> "Latitude: input should be ...": the field a person typed.
function readable(body) {
  if (Array.isArray(body.detail) && body.detail.length) {
    return body.detail.map((d) => {
      const field = String(d.field || "").split(".").filter((part) => !/^\d+$/.test(part)).pop() || "request";
      const message = String(d.message || "");
      return `${field}: ${message.charAt(0).toLowerCase()}${message.slice(1)}`;
    }).join("; ");
  }
  return body.error;
}

// Every call goes through here: one place for the API key and for readable errors.
async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch (_) {
    throw new Error("Cannot reach the server: is it running?");
  }
  if (response.status === 401) document.getElementById("key-box").hidden = false;
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = readable(await response.json()) || detail; } catch (_) { /* not JSON */ }
    throw new Error([STATUS_WORDS[response.status], detail].filter(Boolean).join(" "));
  }
  return response;
}

// One panel's request: its previous answer and error are cleared first, so what shows is this
// request's answer or this request's error, never one under the other.
async function inPanel(id, work) {
  const panel = document.getElementById(id);
  const error = panel.querySelector("[data-error]");
  error.textContent = "";
  for (const answer of panel.querySelectorAll("[data-answer]")) {
    answer.replaceChildren();
    if (answer.tagName === "IMG" || answer.tagName === "svg") answer.hidden = true;
  }
  try { await work(); } catch (err) { error.textContent = `Error: ${err.message}`; }
}

// A PNG answer shown at four times its size, pixels kept sharp (28x28 digits are tiny otherwise).
async function showPng(imageId, response) {
  const image = document.getElementById(imageId);
  image.onload = () => { image.style.width = `${image.naturalWidth * 4}px`; };
  image.src = URL.createObjectURL(await response.blob());
  image.hidden = false;
}

function onSubmit(formId, panelId, work) {
  document.getElementById(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    inPanel(panelId, () => work(new FormData(event.target)));
  });
}

// A model still to come in a first run: its state and the time it still needs.
function pendingText(m) {
  if (m.state === "failed") return `training failed: ${m.error}`;
  const left = m.seconds_left < 90 ? `${m.seconds_left} s` : `${Math.round(m.seconds_left / 60)} min`;
  return `${m.state}, ${Math.round(m.progress * 100)}% done, about ${left} left`;
}

// What each model does and how well, in a person's words, from its headline test metrics.
const percent = (value) => `${(value * 100).toFixed(1)}%`;
const KINDS = {
  "mnist-cnn": "A convolutional network", "mnist-logreg": "Logistic regression", "mnist-knn": "k nearest neighbours",
  "mnist-tree": "A decision tree", "mnist-forest": "A random forest", "house-price-gbm": "Gradient-boosted trees",
  "house-price-mlp": "A small neural network", vae: "A variational autoencoder", "vae-conditional":
  "A class-conditional variational autoencoder", gan: "A GAN", "gan-conditional": "A class-conditional GAN",
  "gan-wgan-gp": "A GAN trained with a Wasserstein critic (WGAN-GP)", diffusion: "A diffusion model",
};
function about(m) {
  const x = m.metrics || {};
  const kind = KINDS[m.name] || "A model";
  const known = (...names) => names.every((name) => Number.isFinite(x[name]));
  if (m.task === "image-classification" && m.labels && m.name !== "mnist-cnn" && !m.name.startsWith("mnist-")) {
    return `A pretrained network, fine-tuned to name what is in a photo (${m.labels.join(", ")})` +
      (known("test_accuracy") ? `: right on ${percent(x.test_accuracy)} of the test photos.` : ".");
  }
  if (m.task === "image-classification") {
    return `${kind} that reads handwritten digits` +
      (known("test_accuracy") ? `: right on ${percent(x.test_accuracy)} of the 10,000 test digits.` : ".");
  }
  if (m.task === "tabular-regression") {
    return `${kind} pricing the homes of a California block group` + (known("test_mae")
      ? `: off by $${Math.round(x.test_mae * 100000).toLocaleString("en-US")} on average over the test districts.` : ".");
  }
  if (m.task === "time-series-forecasting") {
    return "Forecasts monthly airline passengers" +
      (known("test_mape") ? `: off by ${x.test_mape.toFixed(1)}% on average over its test months.` : ".");
  }
  if (m.task === "image-generation") {
    const quality = known("fid", "fid_floor_validation_vs_test")
      ? `: its digits score ${x.fid.toFixed(0)} on FID against real ones, where two sets of real digits score ` +
        `${x.fid_floor_validation_vs_test.toFixed(0)} (lower is better).` : ".";
    const asked = known("conditional_accuracy")
      ? ` Asked for a digit, it draws that digit ${percent(x.conditional_accuracy)} of the time.` : "";
    return `${kind} that draws new handwritten digits${quality}${asked}`;
  }
  return "An ONNX model added from elsewhere, served on /v2 only.";
}

// A trained network's learning curve, from its card: per epoch, its training loss and the
// validation score that chose the epoch (an ensemble: one line per member).
function learningRuns(card) {
  if (card.validation && Array.isArray(card.validation.history)) return [card.validation.history];
  return (card.members || []).map((member) => member.history).filter(Array.isArray);
}

// A label in a chart, at (x, y) in its viewBox.
function svgText(words, x, y) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", "text");
  node.setAttribute("x", x);
  node.setAttribute("y", y);
  node.textContent = words;
  return node;
}

// Lines over one x axis: each series is [[x, y], ...] with a class (its colour), optional error
// bars as [[x, low, high], ...].
function lineChart(title, series, xLabel) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 260 130");
  svg.setAttribute("class", "curve");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const points = series.flatMap((s) => s.points.concat((s.bars || []).flatMap(([x, lo, hi]) => [[x, lo], [x, hi]])))
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = points.map(([x]) => x), ys = points.map(([, y]) => y);
  const [left, right, low, high] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const x = (v) => 34 + ((v - left) * 216) / Math.max(right - left, 1e-12);
  const y = (v) => 110 - ((v - low) * 90) / Math.max(high - low, 1e-12);
  svg.append(svgText(title, 34, 12), svgText(high.toPrecision(3), 0, 24), svgText(low.toPrecision(3), 0, 112),
             svgText(xLabel, 120, 126));
  for (const { points: line, bars, className } of series) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    node.setAttribute("points", line.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" "));
    node.setAttribute("class", className);
    svg.append(node);
    for (const [a, lo, hi] of bars || []) {
      const bar = document.createElementNS("http://www.w3.org/2000/svg", "line");
      Object.entries({ x1: x(a), x2: x(a), y1: y(lo), y2: y(hi), class: `${className} bar` })
        .forEach(([k, v]) => bar.setAttribute(k, typeof v === "number" ? v.toFixed(1) : v));
      svg.append(bar);
    }
  }
  return svg;
}

// Each run's value of `key` per epoch, as one series each (an ensemble's members: several).
const perEpoch = (runs, key, className) => runs
  .map((run) => ({ className, points: run.filter((e) => Number.isFinite(e[key])).map((e) => [e.epoch, e[key]]) }))
  .filter((series) => series.points.length);

// The house models' diagnostic over training-set size: fitted and held-out error, fold error bars.
function sizeChart(curve) {
  const rows = curve.training_rows;
  const series = (kind, className) => ({
    className,
    points: rows.map((n, i) => [n, curve[`${kind}_rmse_mean`][i]]),
    bars: rows.map((n, i) => [n, curve[`${kind}_rmse_mean`][i] - curve[`${kind}_rmse_std`][i],
                              curve[`${kind}_rmse_mean`][i] + curve[`${kind}_rmse_std`][i]]),
  });
  return lineChart(`RMSE by training rows (${curve.folds} folds): fitted, held out`,
                   [series("train", "train"), series("val", "validation")], `${rows[0]} to ${rows.at(-1)} rows`);
}

// A section of a model's entry drawn on its first opening (its requests are made only then); an
// error is shown in it.
function onFirstOpen(className, title, draw) {
  const details = document.createElement("details");
  details.className = className;
  details.append(Object.assign(document.createElement("summary"), { textContent: title }));
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.drawn) return;
    details.dataset.drawn = "yes";
    try {
      await draw(details);
    } catch (err) {
      details.append(Object.assign(document.createElement("p"), { className: "error", textContent: err.message }));
    }
  });
  return details;
}

const paragraph = (text) => Object.assign(document.createElement("p"), { textContent: text });

function learningCurve(name) {
  return onFirstOpen("learning", "learning curve", async (details) => {
    const card = await (await call(`/models/${encodeURIComponent(name)}/card`)).json();
    const runs = learningRuns(card).filter((run) => run.length);
    const bySize = card.learning_curve_by_size;
    if (!runs.length && !bySize) {
      details.append(paragraph("Fitted without epochs (trees, neighbours, a linear model): no curve to show."));
      return;
    }
    if (runs.length) {
      const chosen = Object.keys(card.validation || {}).find((k) => k.startsWith("best_") && k !== "best_epoch");
      const metric = chosen ? chosen.slice(5).replaceAll("_", " ") : "validation MAPE";
      const epochs = `epoch 1 to ${Math.max(...runs.map((run) => run.length))}`;
      details.append(
        lineChart("loss: training, validation", [...perEpoch(runs, "train_loss", "train"),
                                                 ...perEpoch(runs, "val_loss", "validation")], epochs),
        lineChart(`validation: ${metric} (lower is better)`, perEpoch(runs, "val_score", "score"), epochs));
      // A GAN's two losses are not the same quantity: its card says what the validation one is.
      const meaning = card.validation && card.validation.val_loss;
      if (typeof meaning === "string") details.append(paragraph(`Validation loss: ${meaning}.`));
    }
    if (bySize) details.append(sizeChart(bySize));
  });
}

// A model's monitoring: its out-of-distribution flags over time, the drift of its inputs (PSI
// against training) and its accuracy or RMSE from the feedback people gave.
function monitoring(name) {
  return onFirstOpen("monitoring", "monitoring", async (details) => {
    const drift = await (await call(`/models/${encodeURIComponent(name)}/drift`)).json();
    if (drift.flags_by_minute.length) {
      const rate = drift.flags_by_minute.map(([minute, items, flagged]) => [minute / 60, flagged / items]);
      details.append(lineChart("share of inputs flagged, per minute", [{ className: "validation", points: rate }],
                               "the last two hours"));
    }
    details.append(paragraph(drift.ood_flag_rate === null ? "No input with a novelty verdict yet."
      : `Flagged out of distribution: ${percent(drift.ood_flag_rate)} of the last ${drift.items.flags} inputs.`));
    const shifts = Object.entries(drift.psi).sort((a, b) => b[1] - a[1]);
    if (shifts.length) {
      details.append(paragraph("Drift against the training data (PSI; over 0.2 is drift): " + shifts.map(
        ([feature, value]) => `${feature.replaceAll("_", " ")} ${value.toFixed(3)}${value > 0.2 ? " (drifted)" : ""}`,
      ).join(", ") + "."));
    }
    const response = await fetch(`/models/${encodeURIComponent(name)}/live-metrics`, { headers: authHeaders() });
    if (response.status === 404) {  // a server without a prediction log keeps no feedback
      details.append(paragraph("This server keeps no prediction log, so no feedback."));
      return;
    }
    if (!response.ok) throw new Error(readable(await response.json()) || response.statusText);
    const live = await response.json();
    const figure = live.accuracy !== null ? `accuracy ${percent(live.accuracy)}`
      : live.rmse !== null ? `RMSE ${live.rmse.toPrecision(3)}` : null;
    details.append(paragraph(figure ? `From people's feedback on ${live.answers} answers: ${figure}.` : "No feedback yet."));
  });
}

function loadModels() {
  return inPanel("models-panel", async () => {
    const listed = await (await call("/models")).json();
    const models = listed.filter((m) => m.state === "loaded");
    document.getElementById("models").replaceChildren(...listed.map((m) => {
      const item = document.createElement("li");
      if (m.state !== "loaded") {
        item.className = "pending";
        item.textContent = `${m.name}: ${pendingText(m)}`;
        return item;
      }
      const card = document.createElement("a");
      card.href = `/models/${encodeURIComponent(m.name)}/card`;
      card.target = "_blank";
      card.textContent = m.name;
      // The version requests get; every other one loaded beside it (a rollback's, a pinned one).
      const others = (m.versions || []).filter((v) => v !== m.version);
      const details = document.createElement("span");
      details.className = "version";
      details.textContent = ` version ${m.version}` + (others.length ? ` (also loaded: ${others.join(", ")})` : "") +
        (m.profile === "quick" ? ", quick profile (a short training)" : "");
      const words = document.createElement("p");
      words.textContent = about(m);
      item.append(card, details, words, learningCurve(m.name), monitoring(m.name));
      return item;
    }));
    // In a first run the list is refreshed until every model is loaded or has failed.
    if (listed.some((m) => m.state !== "loaded" && m.state !== "failed")) setTimeout(loadModels, 5000);
    // The digit classifiers this server loaded: the CNN first, then the classical ones.
    const digitModels = models.filter((m) => m.name.startsWith("mnist-")).map((m) => m.name)
      .sort((a, b) => (b === "mnist-cnn") - (a === "mnist-cnn"));
    document.getElementById("digit-model").replaceChildren(...digitModels.map((name) => new Option(name, name)));
    const photos = models.find((m) => m.labels && m.name === "transfer-cnn");
    if (photos) {
      document.getElementById("image-labels").textContent =
        `The model knows ${photos.labels.length} labels: ${photos.labels.join(", ")}. Pick a photo of one of them.`;
    }
  });
}

// --- digits: drawing canvas and file picker ---------------------------------------------------
const canvas = document.getElementById("digit-canvas");
const ctx = canvas.getContext("2d");
function clearCanvas() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); }
clearCanvas();
let drawing = false;
function point(event) {
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
}
canvas.addEventListener("pointerdown", (event) => {
  drawing = true;
  canvas.setPointerCapture(event.pointerId);
  ctx.beginPath();
  ctx.moveTo(...point(event));
});
canvas.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  ctx.lineTo(...point(event));
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.stroke();
});
canvas.addEventListener("pointerup", () => { drawing = false; });

// One-click examples: strokes in fractions of the canvas, drawn as a hand would.
const EXAMPLE_STROKES = {
  7: [[[0.25, 0.2], [0.75, 0.2], [0.45, 0.85]]],
  1: [[[0.5, 0.15], [0.5, 0.85]]],
  4: [[[0.6, 0.15], [0.25, 0.6], [0.78, 0.6]], [[0.6, 0.35], [0.6, 0.88]]],
};
for (const button of document.querySelectorAll("#digits-panel .example")) {
  button.addEventListener("click", () => {
    clearCanvas();
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    for (const stroke of EXAMPLE_STROKES[button.dataset.digit]) {
      ctx.beginPath();
      stroke.forEach(([x, y], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x * canvas.width, y * canvas.height));
      ctx.stroke();
    }
    canvas.toBlob(classifyDigit, "image/png");
  });
}

// Whether the model has seen anything like the input: its novelty score against the card's threshold.
function showFlag(id, flag, what) {
  const node = document.getElementById(id);
  if (!flag) return;
  const named = flag.outside_training_range.length ? `; outside the training range: ${flag.outside_training_range.join(", ")}` : "";
  node.textContent = flag.flagged
    ? `Unlike the training data (score ${flag.score.toFixed(1)} > ${flag.threshold.toFixed(1)}${named}): ${what}`
    : `Like the training data (score ${flag.score.toFixed(1)} <= ${flag.threshold.toFixed(1)}).`;
  node.classList.toggle("flagged", flag.flagged);
}

// Contesting an answer: one click on the right label (or a value and Send) stores it beside the
// logged answer (POST /feedback). Shown only where the server keeps a prediction log.
function contest(containerId, answer, labels, unit) {
  const box = document.getElementById(containerId);
  if (!answer.prediction_id) return;
  const sent = (truth) => call("/feedback", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prediction_id: answer.prediction_id, truth }),
  }).then(() => { box.replaceChildren(`Thank you: stored as ${truth}${unit ? ` ${unit}` : ""}.`); },
          (err) => { box.replaceChildren(`Not stored: ${err.message}`); });
  const words = document.createElement("span");
  words.textContent = "Wrong? The right answer: ";
  if (labels) {
    box.replaceChildren(words, ...labels.map((label) => {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: label });
      button.addEventListener("click", () => sent(label));
      return button;
    }));
    return;
  }
  const value = Object.assign(document.createElement("input"), { type: "number", step: "any", ariaLabel: "true value" });
  const send = Object.assign(document.createElement("button"), { type: "button", textContent: "Send" });
  send.addEventListener("click", () => { if (value.value !== "") sent(Number(value.value)); });
  box.replaceChildren(words, value, ` ${unit} `, send);
}

function digitForm(blob) {
  const form = new FormData();
  form.append("image", blob, "digit.png");
  form.append("model", document.getElementById("digit-model").value || "mnist-cnn");
  return form;
}

let lastDigit = null;  // the picture the Explain button explains
function classifyDigit(blob) {
  lastDigit = blob;
  document.getElementById("digit-explain").disabled = false;
  return inPanel("digits-panel", async () => {
    const answer = await (await call("/digits/classify", { method: "POST", body: digitForm(blob) })).json();
    document.getElementById("digit-answer").textContent =
      `digit ${answer.digit} (${answer.parity.label}, p=${answer.parity.probability.toFixed(3)})`;
    showFlag("digit-flag", answer.out_of_distribution, "the answer means little.");
    contest("digit-contest", answer, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const bars = document.getElementById("digit-bars");
    bars.replaceChildren(...answer.probabilities.flatMap((prob, digit) => {
      const label = document.createElement("span");
      label.textContent = digit;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${(prob * 100).toFixed(1)}%`;
      const value = document.createElement("span");
      value.textContent = prob.toFixed(3);
      return [label, bar, value];
    }));
  });
}
document.getElementById("digit-classify").addEventListener("click", () => canvas.toBlob(classifyDigit, "image/png"));
document.getElementById("digit-explain").addEventListener("click", () => inPanel("digits-panel", async () => {
  const answer = await (await call("/digits/explain", { method: "POST", body: digitForm(lastDigit) })).json();
  document.getElementById("digit-answer").textContent = `digit ${answer.digit} (p=${answer.probability.toFixed(3)})`;
  document.getElementById("digit-why").textContent =
    "Red: strokes whose covering lowers the answer's probability (evidence for it); blue: against it.";
  const heat = document.getElementById("digit-heat");
  heat.src = `data:image/png;base64,${answer.occlusion.png}`;
  heat.hidden = false;
}));
document.getElementById("digit-clear").addEventListener("click", clearCanvas);
document.getElementById("digit-file").addEventListener("change", (event) => {
  if (event.target.files[0]) classifyDigit(event.target.files[0]);
});

// --- image classification -----------------------------------------------------------------------
document.getElementById("image-file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file, file.name);
  inPanel("images-panel", async () => {
    const answer = await (await call("/images/classify", { method: "POST", body: form })).json();
    document.getElementById("image-answer").replaceChildren(...answer.predictions.map((pred) => {
      const item = document.createElement("li");
      item.textContent = `${pred.label}: ${(pred.probability * 100).toFixed(1)}%`;
      return item;
    }));
    showFlag("image-flag", answer.out_of_distribution, "its labels mean little.");
    contest("image-contest", answer, answer.predictions.map((pred) => pred.label).sort());
  });
});

// --- house price --------------------------------------------------------------------------------
onSubmit("house-form", "house-panel", async (fields) => {
  const house = {};
  for (const [name, value] of fields) if (name !== "model") house[name] = Number(value);
  const request = { method: "POST", headers: { "Content-Type": "application/json" },
                    body: JSON.stringify({ houses: [house], model: fields.get("model") }) };
  const answer = await (await call("/house-price/predict", request)).json();
  const prediction = answer.predictions[0];
  const dollars = (value) => `$${Math.round(value).toLocaleString("en-US")}`;
  document.getElementById("house-answer").textContent = `${dollars(prediction.price_usd)} (${answer.model.name})`;
  if (prediction.interval_usd) {
    document.getElementById("house-interval").textContent = `${Math.round(answer.level * 100)}% prediction interval: ` +
      `${dollars(prediction.interval_usd[0])} to ${dollars(prediction.interval_usd[1])}`;
  }
  showFlag("house-flag", prediction.out_of_distribution, "the price is an extrapolation.");
  contest("house-contest", answer, null, "x $100k");
  const why = (await (await call("/house-price/explain", request)).json()).explanations[0];
  const largest = Math.max(...Object.values(why.attributions).map(Math.abs), 1e-9);
  document.getElementById("house-why").replaceChildren(...Object.entries(why.attributions).flatMap(([name, share]) => {
    const label = document.createElement("span");
    label.textContent = name;
    const bar = document.createElement("div");
    bar.className = share < 0 ? "bar negative" : "bar";
    bar.style.width = `${(Math.abs(share) / largest * 100).toFixed(1)}%`;
    const value = document.createElement("span");
    value.textContent = `${share < 0 ? "-" : "+"}${dollars(Math.abs(share) * 100000)}`;
    return [label, bar, value];
  }), Object.assign(document.createElement("span"), {
    className: "wide", textContent: `Why: each feature's share of the price above the average ${dollars(why.baseline * 100000)}`,
  }));
});

for (const button of document.querySelectorAll("#house-panel .example")) {
  button.addEventListener("click", () => {
    const form = document.getElementById("house-form");
    for (const [name, value] of Object.entries(JSON.parse(button.dataset.house))) form.elements[name].value = value;
    form.requestSubmit();
  });
}

// --- generation ---------------------------------------------------------------------------------
// Server-sent events read from a fetch (EventSource cannot send the API key): each {event, data}.
// Lines may end in CRLF (a proxy's), the space after a field's colon is optional, data may span lines.
async function* serverEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const fields = { event: "message", data: [] };
      for (const line of buffer.slice(0, end).split("\n")) {
        const match = /^(event|data):( ?)(.*)$/.exec(line);  // comments (heartbeats) match nothing
        if (match && match[1] === "event") fields.event = match[3];
        if (match && match[1] === "data") fields.data.push(match[3]);
      }
      buffer = buffer.slice(end + 2);
      if (fields.data.length) yield { event: fields.event, data: JSON.parse(fields.data.join("\n")) };
    }
  }
}

let runningJob = null;  // the location of the job the Cancel button cancels
document.getElementById("generate-cancel").addEventListener("click", () => {
  if (!runningJob) return;
  call(runningJob, { method: "DELETE" }).catch((err) => {
    document.querySelector("#generate-panel [data-error]").textContent = `Error: ${err.message}`;
  });
});

// A generation runs as a job: its progress, the digits emerging as the sampler denoises them, and
// the result once done; the request itself answers at once, so no proxy cuts a long one off.
onSubmit("generate-form", "generate-panel", async (fields) => {
  const model = fields.get("model");
  const request = { n: Number(fields.get("n")), format: "png" };
  if (fields.get("seed") !== "") request.seed = Number(fields.get("seed"));
  // A digit for the VAE or the GAN is drawn by its class-conditional twin (the answer names it).
  if (fields.get("digit") !== "") {
    if (model === "wgan-gp") throw new Error("wgan-gp draws any digit: leave digit empty, or pick gan or vae for one digit");
    request.digit = Number(fields.get("digit"));
  }
  if (model === "diffusion") {
    request.steps = Number(fields.get("steps"));
    if (fields.get("guidance") !== "") request.guidance = Number(fields.get("guidance"));
    if (Number(fields.get("eta"))) request.eta = Number(fields.get("eta"));
  }
  const started = performance.now();
  const [row, bar, status, image, submit] = ["generate-job", "generate-progress", "generate-status", "generate-image"]
    .map((id) => document.getElementById(id)).concat(document.querySelector("#generate-form button[type=submit]"));
  submit.disabled = true;  // one job at a time from this page: one progress bar, one picture
  let job;
  try {
    job = await (await call(`/generate/${model}/jobs`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    })).json();
  } finally {
    if (!job) submit.disabled = false;
  }
  runningJob = job.location;
  row.hidden = false;
  bar.max = job.progress.total;
  bar.value = 0;
  bar.dataset.events = "0";
  image.dataset.previews = "0";
  status.textContent = "queued";
  const every = Math.max(1, Math.floor(job.progress.total / 50));
  try {
    for await (const { event, data } of serverEvents(await call(`${job.events}?every=${every}&preview=true`))) {
      if (event === "failed" || event === "error") throw new Error(data.error);
      bar.value = data.progress.done;
      bar.dataset.events = String(Number(bar.dataset.events) + 1);
      const left = data.seconds_left === null ? "" : `, about ${Math.ceil(data.seconds_left)} s left`;
      status.textContent = `${data.state}: ${data.progress.done} of ${data.progress.total} ${data.progress.unit}${left}`;
      if (data.preview) {
        image.onload = () => { image.style.width = `${image.naturalWidth * 4}px`; };
        image.src = `data:image/png;base64,${data.preview}`;
        image.classList.add("preview");
        image.hidden = false;
        image.dataset.previews = String(Number(image.dataset.previews) + 1);
      }
      if (event === "cancelled") { status.textContent = "cancelled"; return; }
      if (event !== "done") continue;
      const response = await call(data.result);
      image.classList.remove("preview");
      await showPng("generate-image", response);
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      document.getElementById("generate-answer").textContent = `${request.n} images in ${seconds} s by ` +
        `${response.headers.get("X-Model")} (seed ${response.headers.get("X-Seed")})`;
      return;
    }
    throw new Error("the server stopped sending the job's progress; reload the page to try again");
  } finally {
    if (runningJob === job.location) runningJob = null;
    row.hidden = status.textContent !== "cancelled";
    submit.disabled = false;
  }
});

for (const button of document.querySelectorAll("#generate-panel .example")) {
  button.addEventListener("click", () => {
    const form = document.getElementById("generate-form");
    const example = { seed: "", digit: "", guidance: "", steps: 50, eta: 0, ...JSON.parse(button.dataset.generate) };
    for (const [name, value] of Object.entries(example)) form.elements[name].value = value;
    form.requestSubmit();
  });
}

// --- passengers forecast: the numbers, and the history and forecast drawn as lines ---------------
function drawForecast(history, forecast, intervals) {
  const chart = document.getElementById("forecast-chart");
  const values = [...history, ...forecast, ...(intervals || []).flat()];
  const [width, height, pad] = [600, 240, 30];
  const low = Math.min(...values), high = Math.max(...values);
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(values.length - 1, 1);
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / Math.max(high - low, 1e-9);
  const line = (points, className) => {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    path.setAttribute("points", points.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
    path.setAttribute("class", className);
    return path;
  };
  const start = history.length ? history.length - 1 : 0;
  const ahead = (history.length ? [[start, history[start]]] : []).concat(forecast.map((v, i) => [start + i + (history.length ? 1 : 0), v]));
  const first = start + (history.length ? 1 : 0);
  const band = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
  band.setAttribute("class", "band");
  band.setAttribute("points", (intervals || []).map(([lo], i) => [first + i, lo])
    .concat((intervals || []).map(([, hi], i) => [first + i, hi]).reverse())
    .map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  chart.replaceChildren(band,
    line(history.map((v, i) => [i, v]), "history"), line(ahead, "forecast"),
    svgText(`${Math.round(high)}k`, 2, pad - 8), svgText(`${Math.round(low)}k`, 2, height - 8),
    svgText(history.length ? "grey: history, orange: forecast" : "forecast after 1960-12", width - 220, height - 8));
  chart.hidden = false;
}

onSubmit("forecast-form", "forecast-panel", async (fields) => {
  const text = fields.get("history").trim();
  const history = text ? text.split(/[\s,;]+/).map(Number) : [];
  if (history.some((v) => !Number.isFinite(v))) throw new Error("history: write numbers separated by commas");
  const request = { horizon: Number(fields.get("horizon")), level: Number(fields.get("level")),
                    ...(history.length ? { history } : {}) };
  const answer = await (await call("/passengers/forecast", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
  })).json();
  document.getElementById("forecast-answer").textContent =
    `next ${answer.forecast.length} months: ${answer.forecast.map((v) => Math.round(v)).join(", ")} thousand` +
    (answer.intervals ? ` (shaded: ${Math.round(answer.level * 100)}% intervals)` : "");
  drawForecast(history.slice(-48), answer.forecast, answer.intervals);
});

for (const button of document.querySelectorAll("#forecast-panel .example")) {
  button.addEventListener("click", () => {
    const form = document.getElementById("forecast-form");
    form.elements.history.value = "";
    form.elements.horizon.value = button.dataset.horizon;
    form.requestSubmit();
  });
}

// --- VAE interpolation -----------------------------------------------------------------------------
onSubmit("interpolate-form", "interpolate-panel", async (fields) => {
  const request = { seeds: [Number(fields.get("start")), Number(fields.get("end"))], frames: Number(fields.get("frames")) };
  await showPng("interpolate-image", await call("/generate/vae/interpolate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
  }));
});

// --- the course's labs: each one's plot (committed in docs/labs/) and what it shows ----------------
const LABS = [
  ["ex0", "ex0_fibonacci.py", "Fibonacci regression",
   "A linear model learns the recurrence itself, weights (1.0, 1.0), once trained long enough: after the notes' " +
   "10 epochs it predicts 21 for the pair (13, 21), after 5,000 epochs 34."],
  ["ex2", "ex2_outliers.py", "Trees against a network, with outliers",
   "Scored on the points it fitted, the depth-5 tree wins (MSE 0.025) by bending to each outlier; against the " +
   "clean sine it is the worst (0.145) and the 1-10-1 network the best (0.015)."],
  ["ex4", "ex4_vanishing_gradients.py", "Vanishing gradients",
   "Through ten sigmoid layers the first layer's gradient is 1.3e7 times smaller than the last's and the loss " +
   "stalls at 13.4; ReLU with He initialisation (loss 1.35) or batch normalisation (3.0) keeps every layer learning."],
  ["ex5", "ex5_normalisation.py", "Normalising the inputs",
   "With one feature a thousand times larger than the other, raw inputs never beat always saying yes (88%); " +
   "standardised inputs reach 99.0% held-out accuracy."],
  ["ex6", "ex6_garbage_in.py", "Garbage in, garbage out",
   "Label noise costs precision with its square: the error against the true line grows from 1e-5 with clean " +
   "labels to 6.2 at noise 15 and 68 at noise 50."],
];
document.getElementById("labs").replaceChildren(...LABS.map(([name, module, title, words]) => {
  const figure = document.createElement("figure");
  const image = Object.assign(document.createElement("img"), {
    src: `/labs/${name}.png`, alt: `${title}: the lab's plot`, loading: "lazy" });
  const caption = document.createElement("figcaption");
  const heading = Object.assign(document.createElement("strong"), { textContent: `${name}: ${title}. ` });
  const code = Object.assign(document.createElement("code"), { textContent: `training/labs/${module}` });
  caption.append(heading, words, " Module: ", code, ".");
  figure.append(image, caption);
  return figure;
}));

document.getElementById("save-key").addEventListener("click", () => {
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
  document.getElementById("key-box").hidden = true;
  loadModels();
});

loadModels();

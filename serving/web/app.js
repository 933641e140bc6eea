// ZooServe demo page: plain JavaScript over the public endpoints, no build step.
"use strict";

const KEY_STORAGE = "zooserve-api-key";

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Every call goes through here: one place for the API key and for readable errors.
async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) document.getElementById("key-box").hidden = false;
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// One panel's request: its error line is cleared first and shows whatever the request throws.
async function inPanel(id, work) {
  const error = document.getElementById(id).querySelector("[data-error]");
  error.textContent = "";
  try { await work(); } catch (err) { error.textContent = `Error: ${err.message}`; }
}

function onSubmit(formId, panelId, work) {
  document.getElementById(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    inPanel(panelId, () => work(new FormData(event.target)));
  });
}

function loadModels() {
  return inPanel("models-panel", async () => {
    const models = await (await call("/models")).json();
    const body = document.querySelector("#models tbody");
    body.replaceChildren(...models.map((m) => {
      const row = document.createElement("tr");
      const metrics = Object.entries(m.metrics)
        .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : Number(v).toFixed(4)}`).join(", ");
      for (const text of [m.name, m.version, m.task, metrics]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }));
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

function classifyDigit(blob) {
  const form = new FormData();
  form.append("image", blob, "digit.png");
  return inPanel("digits-panel", async () => {
    const answer = await (await call("/digits/classify", { method: "POST", body: form })).json();
    document.getElementById("digit-answer").textContent =
      `digit ${answer.digit} (${answer.parity.label}, p=${answer.parity.probability.toFixed(3)})`;
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
  });
});

// --- house price --------------------------------------------------------------------------------
onSubmit("house-form", "house-panel", async (fields) => {
  const house = {};
  for (const [name, value] of fields) if (name !== "model") house[name] = Number(value);
  const answer = await (await call("/house-price/predict", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ houses: [house], model: fields.get("model") }),
  })).json();
  const price = answer.predictions[0].price_usd;
  document.getElementById("house-answer").textContent =
    `$${Math.round(price).toLocaleString("en-US")} (${answer.model.name})`;
});

// --- generation ---------------------------------------------------------------------------------
onSubmit("generate-form", "generate-panel", async (fields) => {
  const model = fields.get("model");
  const request = { n: Number(fields.get("n")), format: "png" };
  if (fields.get("seed") !== "") request.seed = Number(fields.get("seed"));
  if (model === "diffusion") {  // the VAE and GAN are unconditional: they refuse a digit
    if (fields.get("digit") !== "") request.digit = Number(fields.get("digit"));
    request.steps = Number(fields.get("steps"));
    if (fields.get("guidance") !== "") request.guidance = Number(fields.get("guidance"));
  }
  const started = performance.now();
  const response = await call(`/generate/${model}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
  });
  const image = document.getElementById("generate-image");
  image.src = URL.createObjectURL(await response.blob());
  image.hidden = false;
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  document.getElementById("generate-answer").textContent =
    `${request.n} images in ${seconds} s (seed ${response.headers.get("X-Seed")})`;
});

document.getElementById("save-key").addEventListener("click", () => {
  sessionStorage.setItem(KEY_STORAGE, document.getElementById("api-key").value);
  document.getElementById("key-box").hidden = true;
  loadModels();
});

loadModels();

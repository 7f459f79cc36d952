// Digits: a drawing pad -> POST /digit; a photo -> POST /digit or POST /number. The answer as a
// bar chart of the ten probabilities, and the 28x28 image(s) the model saw (debug=true).

import { canvasBlob, clearError, postImage, showError } from "./api.js";
import { sizeCanvas } from "./draw.js";

const INK_WIDTH = 20; // on the 280-pixel pad: about an MNIST stroke once scaled to 28x28
const READ_AFTER_MS = 450; // a pause this long after a stroke reads the pad (a 4 or a 7 may take two strokes)
const PHOTO_WIDTH = 320;

// h("p", {class: "x"}, "text", child): a small element builder. `style` is an object of CSS
// properties, set through the DOM: a style="" attribute would be inline style, which the page's
// Content-Security-Policy refuses.
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "style") Object.assign(element.style, value);
    else element.setAttribute(name, value);
  }
  element.append(...children);
  return element;
}

const percent = (p) => (p > 0.9995 ? ">99.9%" : p < 0.0005 ? "0%" : `${(100 * p).toFixed(1)}%`);
const seenImage = (png, size) =>
  h("img", { class: "seen", src: `data:image/png;base64,${png}`, width: size, height: size, alt: "the 28×28 image the model saw" });

export function setupDigits() {
  const $ = (id) => document.getElementById(id);
  const [pad, clear, model, file, kind, error, out] = [
    "digits-pad",
    "digits-clear",
    "digits-model",
    "digits-file",
    "digits-photo-kind",
    "digits-error",
    "digits-answer",
  ].map($);
  const ink = pad.getContext("2d");
  let drawing = false;
  let inked = false;
  let timer = null;
  let asked = 0; // the newest request: an older answer that arrives late is dropped

  function blank() {
    ink.fillStyle = "#000";
    ink.fillRect(0, 0, pad.width, pad.height);
    inked = false;
  }

  function at(event) {
    const rect = pad.getBoundingClientRect();
    return [((event.clientX - rect.left) * pad.width) / rect.width, ((event.clientY - rect.top) * pad.height) / rect.height];
  }

  pad.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    pad.setPointerCapture(event.pointerId);
    clearTimeout(timer);
    drawing = true;
    const [x, y] = at(event);
    Object.assign(ink, { strokeStyle: "#fff", fillStyle: "#fff", lineWidth: INK_WIDTH, lineCap: "round", lineJoin: "round" });
    ink.beginPath();
    ink.arc(x, y, INK_WIDTH / 2, 0, 2 * Math.PI);
    ink.fill();
    ink.beginPath();
    ink.moveTo(x, y);
    inked = true;
  });
  pad.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    for (const step of event.getCoalescedEvents?.() ?? [event]) {
      const [x, y] = at(step);
      ink.lineTo(x, y);
    }
    ink.stroke();
    const [x, y] = at(event);
    ink.beginPath();
    ink.moveTo(x, y);
  });
  const lift = () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(timer);
    timer = setTimeout(readPad, READ_AFTER_MS);
  };
  pad.addEventListener("pointerup", lift);
  pad.addEventListener("pointercancel", lift);

  async function readPad() {
    if (!inked) return;
    await ask("digit", await canvasBlob(pad), null);
  }

  async function ask(endpoint, image, photo) {
    const mine = ++asked;
    clearError(error);
    out.classList.add("busy");
    try {
      const answer = await postImage(endpoint, image, { model: model.value, debug: true });
      if (mine !== asked) return;
      if (endpoint === "digit") showDigit(answer, photo);
      else showNumber(answer, photo);
    } catch (e) {
      if (mine !== asked) return;
      out.replaceChildren();
      delete out.dataset.digit;
      delete out.dataset.number;
      showError(error, e);
    } finally {
      if (mine === asked) out.classList.remove("busy");
    }
  }

  function showDigit(answer, photo) {
    const bars = answer.probabilities.map((p, digit) =>
      h(
        "div",
        { class: digit === answer.digit ? "bar best" : "bar", "data-digit": digit },
        h("span", { class: "label" }, String(digit)),
        h("span", { class: "track" }, h("span", { class: "fill", style: { width: `${Math.max(0.5, 100 * p)}%` } })),
        h("span", { class: "value" }, percent(p)),
      ),
    );
    out.replaceChildren(
      h(
        "div",
        { class: "reading" },
        h("span", { class: "big", id: "digits-digit" }, String(answer.digit)),
        h("span", { class: "meta" }, `confidence ${percent(answer.confidence)} · ${answer.model.toUpperCase()}`),
      ),
      h("div", { class: "bars", role: "img", "aria-label": "probability of each digit" }, ...bars),
      h("figure", { class: "seen-wrap" }, seenImage(answer.input_png, 112), h("figcaption", {}, "what the model saw: 28×28")),
      ...(photo ? [photoWith(photo, [])] : []),
    );
    out.dataset.digit = String(answer.digit);
    delete out.dataset.number;
  }

  function showNumber(answer, photo) {
    const tiles = answer.digits.map((d) =>
      h("figure", { class: "tile" }, seenImage(d.input_png, 56), h("figcaption", {}, `${d.digit} · ${percent(d.confidence)}`)),
    );
    out.replaceChildren(
      h(
        "div",
        { class: "reading" },
        h("span", { class: "big", id: "digits-number" }, answer.number),
        h("span", { class: "meta" }, `${answer.digits.length} digit${answer.digits.length === 1 ? "" : "s"} · ${answer.model.toUpperCase()}`),
      ),
      h("div", { class: "tiles" }, ...tiles),
      ...(photo ? [photoWith(photo, answer.digits.map((d) => d.box))] : []),
    );
    out.dataset.number = answer.number;
    delete out.dataset.digit;
  }

  // The photo, small, with the boxes the service found in it.
  function photoWith(photo, boxes) {
    const canvas = h("canvas", { class: "photo" });
    const width = Math.min(PHOTO_WIDTH, photo.width);
    const scale = width / photo.width;
    const context = sizeCanvas(canvas, width, photo.height * scale);
    context.drawImage(photo, 0, 0, width, photo.height * scale);
    context.strokeStyle = "#2dd4bf";
    context.lineWidth = 2;
    for (const box of boxes) context.strokeRect(box.x * scale, box.y * scale, box.width * scale, box.height * scale);
    return h("figure", { class: "photo-wrap" }, canvas, h("figcaption", {}, "your photo"));
  }

  clear.addEventListener("click", () => {
    blank();
    asked++;
    clearError(error);
    out.replaceChildren(h("p", { class: "placeholder" }, "Draw a digit: it is read when you lift the pen."));
    delete out.dataset.digit;
    delete out.dataset.number;
  });
  model.addEventListener("change", () => inked && readPad());
  file.addEventListener("change", async () => {
    const upload = file.files[0];
    if (!upload) return;
    file.value = ""; // the same photo again is a new choice
    const photo = await createImageBitmap(upload).catch(() => null);
    await ask(kind.value, upload, photo);
  });
  blank();
}

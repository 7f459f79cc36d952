// Faces: a photo (chosen or dropped) -> POST /faces -> the photo with every face drawn on it.

import { clearError, postImage, showError } from "./api.js";
import { drawFaces, nearestPoint, poseWords, sizeCanvas, wordsOf } from "./draw.js";

const MAX_HEIGHT_VH = 0.72; // the photo fits the window's height too

export function setupFaces() {
  const $ = (id) => document.getElementById(id);
  const [file, detector, drop, canvas, tip] = ["faces-file", "faces-detector", "faces-drop", "faces-canvas", "faces-tip"].map($);
  const [error, summary] = [$("faces-error"), $("faces-summary")];
  const placeholder = drop.querySelector(".placeholder");
  let shown = null; // {photo: ImageBitmap, answer, points, hover}
  let lastUpload = null;

  async function read(upload) {
    lastUpload = upload;
    clearError(error);
    summary.textContent = "Looking for faces…";
    delete summary.dataset.faces;
    const photo = await createImageBitmap(upload).catch(() => null); // not an image: the service says why
    const started = performance.now();
    try {
      const answer = await postImage("faces", upload, { detector: detector.value });
      const ms = performance.now() - started;
      if (upload !== lastUpload) return; // a newer photo is on its way
      shown = { photo, answer, points: [], hover: null };
      render();
      const count = answer.faces.length;
      summary.textContent =
        `${count === 0 ? "No face" : count === 1 ? "1 face" : `${count} faces`} in ${answer.width}×${answer.height} ` +
        `pixels · answered in ${Math.round(ms)} ms`;
      summary.dataset.faces = String(count);
      window.visionPage.faces = shown;
    } catch (e) {
      if (upload !== lastUpload) return;
      shown = null;
      render();
      summary.textContent = "";
      showError(error, e);
    }
  }

  function render() {
    canvas.hidden = !shown?.photo;
    placeholder.hidden = !canvas.hidden;
    tip.hidden = true;
    if (!shown?.photo) return;
    const { photo, answer } = shown;
    const room = drop.clientWidth - 2 * parseFloat(getComputedStyle(drop).paddingLeft);
    const width = Math.min(room, photo.width, (window.innerHeight * MAX_HEIGHT_VH * photo.width) / photo.height);
    const height = (width * photo.height) / photo.width;
    const context = sizeCanvas(canvas, width, height);
    context.drawImage(photo, 0, 0, width, height);
    // The answer is in the photo's own pixels (the service decodes as the browser does, EXIF turns included).
    shown.points = drawFaces(context, answer.faces, { scale: width / answer.width, width, height }, { highlight: shown.hover });
  }

  canvas.addEventListener("mousemove", (event) => {
    if (!shown) return;
    const point = nearestPoint(shown.points, event.offsetX, event.offsetY);
    const same = point && shown.hover && point.face === shown.hover.face && point.name === shown.hover.name;
    if (!same && (point || shown.hover)) {
      shown.hover = point;
      render();
    }
    if (point) {
      const sure = point.confidence == null ? "" : ` · ${Math.round(point.confidence * 100)}% sure`;
      const face = shown.answer.faces.length > 1 ? ` · face ${point.face + 1}` : "";
      const pose = poseWords(shown.answer.faces[point.face].pose);
      tip.textContent = `${wordsOf(point.name)}${sure}${face}${pose ? ` · ${pose}` : ""}`;
      tip.style.left = `${canvas.offsetLeft + point.x}px`;
      tip.style.top = `${canvas.offsetTop + point.y}px`;
      tip.hidden = false;
    }
  });
  canvas.addEventListener("mouseleave", () => {
    if (shown?.hover) {
      shown.hover = null;
      render();
    }
  });

  file.addEventListener("change", () => file.files[0] && read(file.files[0]));
  detector.addEventListener("change", () => lastUpload && read(lastUpload));
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const upload = event.dataTransfer.files[0];
    if (upload) read(upload);
  });
  window.addEventListener("resize", () => shown && render());
}

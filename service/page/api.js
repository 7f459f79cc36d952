// Talking to the service. Paths are relative to the page, so it also works behind a path prefix.

export class ServiceError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status; // the HTTP status; 0 when the service could not be reached
  }
}

// POST an image (a File or Blob) as the multipart field `image`, with `fields` beside it; the JSON
// answer, or a ServiceError worded as the service worded it ({"error": ...}).
export async function postImage(path, image, fields = {}) {
  const form = new FormData();
  form.append("image", image, image.name || "image");
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form });
  } catch (e) {
    throw new ServiceError(`cannot reach the service (${e.message})`, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, say; the status line says enough
  }
  if (!response.ok) {
    const worded = body && typeof body.error === "string" ? body.error : `${response.statusText || "error"}`;
    throw new ServiceError(worded, response.status);
  }
  return body;
}

export async function getJSON(path) {
  const response = await fetch(path);
  if (!response.ok) throw new ServiceError(`${path} answered ${response.status}`, response.status);
  return response.json();
}

// An error in its view's alert line: the status as a badge, then the message as it came.
export function showError(element, error) {
  const badge = document.createElement("span");
  badge.className = "code";
  badge.textContent = error.status ? String(error.status) : "error";
  const message = document.createElement("span");
  message.className = "message";
  message.textContent = error.message || String(error);
  element.replaceChildren(badge, message);
  element.hidden = false;
}

export function clearError(element) {
  element.replaceChildren();
  element.hidden = true;
}

// A canvas's contents as a Blob (PNG or JPEG).
export function canvasBlob(canvas, type = "image/png", quality = undefined) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas gave no image"))), type, quality),
  );
}

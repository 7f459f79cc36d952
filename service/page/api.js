// Talking to the service. Paths are relative to the page, so it also works behind a path prefix.

export class ServiceError extends Error {
  constructor(message, status, retryAfter = 0) {
    super(message);
    this.status = status; // the HTTP status; 0 when the service could not be reached
    this.retryAfter = retryAfter; // seconds a busy service (503) asked us to wait; 0 when it did not say
  }
}

// The API key, for a service started with VISION_API_KEYS: asked for when the service answers 401,
// kept for this tab only (sessionStorage: gone when the tab closes, never sent to another origin)
// and sent as `Authorization: Bearer KEY` with every call. The probes and the page's own files
// need none.
const KEY_ITEM = "visionserve.apiKey";
export const KEY_EVENT = "vision-key"; // on window, when a key has been entered

export function storedKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM) || null;
  } catch {
    return null; // storage blocked: the key lives as long as the call that asked for it
  }
}

function keepKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
  } catch {
    // storage blocked: see storedKey
  }
}

// fetch() with the key; on a 401, ask for a key (again, if the one sent was refused) and retry,
// until the service takes it or the form is cancelled (then the 401 is the answer).
export async function keyedFetch(path, init = {}, { ask = true } = {}) {
  let entered = null; // a key typed for this call, for when storage is blocked
  for (;;) {
    const key = storedKey() ?? entered;
    const headers = new Headers(init.headers);
    if (key) headers.set("Authorization", `Bearer ${key}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401 || !ask) return response;
    const now = storedKey();
    if (now && now !== key) continue; // another call got a new key meanwhile: try that one
    if (key) keepKey(null);
    entered = await askForKey(Boolean(key));
    if (!entered) return response;
    keepKey(entered);
    window.dispatchEvent(new Event(KEY_EVENT));
  }
}

let asking = null; // the form's pending answer, shared by every call refused meanwhile

function askForKey(refused) {
  const dialog = document.getElementById("key-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(null);
  if (asking) return asking;
  const input = document.getElementById("key-input");
  document.getElementById("key-why").textContent = refused
    ? "The service refused that key. Enter another one."
    : "The service was started with API keys (VISION_API_KEYS): enter one to use it.";
  input.value = "";
  dialog.returnValue = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        asking = null;
        const key = dialog.returnValue === "use" ? input.value.trim() : "";
        input.value = "";
        resolve(key || null);
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return asking;
}

// The form's Cancel button (Escape cancels too; "Use the key" submits, closing the dialog).
document.getElementById("key-cancel")?.addEventListener("click", () => document.getElementById("key-dialog").close());

// POST an image (a File or Blob) as the multipart field `image`, with `fields` beside it; the JSON
// answer, or a ServiceError worded as the service worded it ({"error": ...}).
export async function postImage(path, image, fields = {}) {
  const form = new FormData();
  form.append("image", image, image.name || "image");
  for (const [name, value] of Object.entries(fields)) form.append(name, String(value));
  let response;
  try {
    response = await keyedFetch(path, { method: "POST", body: form });
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
    const retryAfter = response.status === 503 ? Number(response.headers.get("Retry-After")) || 0 : 0;
    throw new ServiceError(worded, response.status, retryAfter);
  }
  return body;
}

// GET JSON. `ask: false`: a 401 is an error, without asking for the key (for what the page shows
// of its own accord, e.g. the footer's models line).
export async function getJSON(path, { ask = true } = {}) {
  const response = await keyedFetch(path, {}, { ask });
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

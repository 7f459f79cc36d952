// The demo page: three views (tabs), and the service's readiness in the corner.

import { getJSON, KEY_EVENT } from "./api.js";
import { setupDigits } from "./digits.js";
import { setupFaces } from "./faces.js";
import { setupWebcam } from "./webcam.js";

const READY_EVERY_MS = 5000;

window.visionPage = {}; // what the views last showed, for scripts and tests (e.g. visionPage.faces)

function setupTabs(webcam) {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  function select(tab) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (tab.id !== "tab-webcam") webcam.stop(); // the camera runs only while it is looked at
    history.replaceState(null, "", `#${tab.id.slice(4)}`);
  }
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
  const fromHash = () => select(tabs.find((tab) => `#${tab.id.slice(4)}` === location.hash) ?? tabs[0]);
  window.addEventListener("hashchange", fromHash); // #faces, #webcam, #digits: links to a view
  fromHash();
}

// GET /readyz: 200 once the models are loaded and warmed up.
async function checkReady() {
  const status = document.getElementById("status");
  const text = document.getElementById("status-text");
  let state;
  try {
    const response = await fetch("readyz", { cache: "no-store" });
    state = response.ok ? "ready" : "not-ready";
    text.textContent = response.ok
      ? "ready"
      : `not ready: /readyz answered ${response.status}; the models are loading or failed to load`;
  } catch {
    state = "down";
    text.textContent = "cannot reach the service";
  }
  const changed = status.dataset.state !== state;
  status.dataset.state = state;
  if (changed && state === "ready") describeModels();
}

async function describeModels() {
  try {
    const info = await getJSON("info", { ask: false }); // a key is asked for by what the user does, not here
    const standIn = Object.values(info.models).some((model) => model.metrics?.stand_in);
    document.getElementById("models-line").textContent =
      `${Object.keys(info.models).join(", ")} on ${info.providers.join(", ")}${standIn ? " (stand-in models)" : ""}`;
  } catch {
    // the footer line is a nicety
  }
}

setupTabs(setupWebcam());
setupFaces();
setupDigits();
checkReady();
setInterval(checkReady, READY_EVERY_MS);
window.addEventListener(KEY_EVENT, describeModels); // the footer's line, once there is a key for /info

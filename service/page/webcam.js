// Webcam: the camera's frames, as JPEG, to POST /faces with a few requests in flight; the live
// picture with the latest answer drawn over it, smoothed by the One Euro filter when asked.

import { canvasBlob, clearError, postImage, showError } from "./api.js";
import { drawFaces, sizeCanvas } from "./draw.js";
import { FaceSmoother } from "./smoothing.js";

export const MAX_IN_FLIGHT = 2; // enough to overlap the round trip, few enough to stay live
const JPEG_QUALITY = 0.85;
const MAX_SIDE = 640; // frames are sent at most this large (the service detects at 640 anyway)
const RATE_WINDOW_S = 2; // answers/s over the last two seconds
const LATENCIES_KEPT = 30; // round trip: the median of the last 30

export function setupWebcam() {
  const $ = (id) => document.getElementById(id);
  const [button, smoothBox, mirrorBox, error] = ["webcam-start", "webcam-smooth", "webcam-mirror", "webcam-error"].map($);
  const [canvas, video, placeholder, stats] = ["webcam-canvas", "webcam-video", "webcam-placeholder", "webcam-stats"].map($);
  const capture = document.createElement("canvas");
  $("webcam-max-in-flight").textContent = String(MAX_IN_FLIGHT);

  let stream = null;
  let sent = 0; // frames sent, numbered from 1
  let lastShown = 0; // the newest frame whose answer is shown: older answers that arrive late are dropped
  let inFlight = 0;
  let newFrame = false; // the camera has a frame that has not been sent yet
  let latest = null; // {faces, width, height}
  let smoother = new FaceSmoother();
  let answered = [];
  let latencies = [];
  let backoffUntil = 0;

  async function start() {
    clearError(error);
    if (!navigator.mediaDevices?.getUserMedia) {
      showError(error, new Error("this browser gives no camera to this page: open it as http://127.0.0.1:… or over HTTPS"));
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (e) {
      showError(error, new Error(`no camera: ${e.message || e.name}`));
      return;
    }
    video.srcObject = stream;
    await video.play();
    [sent, lastShown, inFlight, latest, answered, latencies] = [0, 0, 0, null, [], []];
    stats.dataset.frames = stats.dataset.withFace = "0";
    smoother = new FaceSmoother();
    button.textContent = "Stop the camera";
    canvas.hidden = false;
    placeholder.hidden = true;
    onVideoFrame();
    requestAnimationFrame(paint);
  }

  function stop() {
    if (!stream) return;
    for (const track of stream.getTracks()) track.stop();
    stream = null;
    video.srcObject = null;
    button.textContent = "Start the camera";
  }

  function onVideoFrame() {
    if (!stream) return;
    newFrame = true;
    pump();
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
    else setTimeout(onVideoFrame, 1000 / 30);
  }

  function pump() {
    while (stream && newFrame && inFlight < MAX_IN_FLIGHT && performance.now() >= backoffUntil) {
      newFrame = false;
      send();
    }
  }

  async function send() {
    const number = ++sent;
    const t = performance.now() / 1000; // the frame's time, for the filter
    inFlight += 1;
    try {
      const shrink = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      capture.width = Math.round(video.videoWidth * shrink);
      capture.height = Math.round(video.videoHeight * shrink);
      capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
      const frame = await canvasBlob(capture, "image/jpeg", JPEG_QUALITY);
      const started = performance.now();
      const answer = await postImage("faces", frame);
      const now = performance.now();
      latencies = [...latencies.slice(1 - LATENCIES_KEPT), now - started];
      answered = [...answered.filter((at) => now - at < RATE_WINDOW_S * 1000), now];
      if (number > lastShown && stream) {
        lastShown = number;
        const faces = smoothBox.checked ? smoother.smooth(answer.faces, t) : answer.faces;
        latest = { faces, width: answer.width, height: answer.height };
        count(answer.faces.length);
      }
      clearError(error);
    } catch (e) {
      showError(error, e);
      if (e.status === 401) stop(); // the key form was cancelled: no frame goes through, so no frame is sent
      // Busy (503): send nothing for the Retry-After it asked, so frames are skipped, never queued;
      // away or refusing: wait a moment.
      const wait = e.retryAfter > 0 ? e.retryAfter * 1000 : 1000;
      backoffUntil = performance.now() + wait;
      setTimeout(pump, wait);
    } finally {
      inFlight -= 1;
      pump();
    }
  }

  function count(faces) {
    stats.dataset.frames = String(Number(stats.dataset.frames) + 1);
    if (faces > 0) stats.dataset.withFace = String(Number(stats.dataset.withFace) + 1);
    $("webcam-faces").textContent = String(faces);
  }

  function paint() {
    if (!stream) return;
    if (video.videoWidth) {
      const room = canvas.parentElement.clientWidth - 2 * parseFloat(getComputedStyle(canvas.parentElement).paddingLeft);
      const width = Math.min(room, 960, video.videoWidth * 1.5);
      const height = (width * video.videoHeight) / video.videoWidth;
      const context = sizeCanvas(canvas, width, height);
      const mirror = mirrorBox.checked;
      const ratio = window.devicePixelRatio || 1;
      if (mirror) context.setTransform(-ratio, 0, 0, ratio, canvas.width, 0); // the picture as in a mirror
      context.drawImage(video, 0, 0, width, height);
      context.setTransform(ratio, 0, 0, ratio, 0, 0); // the overlay mirrors its own points, not its text
      if (latest) drawFaces(context, latest.faces, { scale: width / latest.width, width, mirror }, { labels: false });
    }
    const now = performance.now();
    const recent = answered.filter((at) => now - at < RATE_WINDOW_S * 1000);
    const span = recent.length > 1 ? (recent[recent.length - 1] - recent[0]) / 1000 : 0;
    $("webcam-fps").textContent = span > 0 ? ((recent.length - 1) / span).toFixed(1) : "–";
    $("webcam-latency").textContent = latencies.length ? `${Math.round(median(latencies))} ms` : "–";
    $("webcam-in-flight").textContent = String(inFlight);
    requestAnimationFrame(paint);
  }

  button.addEventListener("click", () => (stream ? stop() : start()));
  smoothBox.addEventListener("change", () => (smoother = new FaceSmoother()));
  return { stop };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

// Webcam: the camera's frames, as JPEG, to POST /faces with a few requests in flight; the live
// picture with the latest answer drawn over it, smoothed by the One Euro filter when asked. Faces
// are followed (tracking.js, the Python webcam client's scheme): a frame is sent for detection
// every DETECT_EVERY frames and when the tracker asks, the others with the boxes that the last
// answer's keypoints give (/faces' `boxes`), so the service skips YuNet; each face has an id.

import { canvasBlob, clearError, postImage, showError } from "./api.js";
import { drawFaces, sizeCanvas } from "./draw.js";
import { FaceSmoother } from "./smoothing.js";
import { grayFrame, Tracker } from "./tracking.js";

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
  const captured = capture.getContext("2d", { willReadFrequently: true }); // read back for the tracker's cut check
  $("webcam-max-in-flight").textContent = String(MAX_IN_FLIGHT);

  let stream = null;
  let sent = 0; // frames sent, numbered from 1
  let lastShown = 0; // the newest frame whose answer is shown: older answers that arrive late are dropped
  let inFlight = 0;
  let newFrame = false; // the camera has a frame that has not been sent yet
  let latest = null; // {faces, width, height}
  let smoother = new FaceSmoother();
  let tracker = new Tracker();
  let run = 0; // the camera's start, so that an answer from before a restart is ignored
  let ids = new Set(); // every id shown since the camera started
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
    stats.dataset.frames = stats.dataset.withFace = stats.dataset.detections = stats.dataset.given = "0";
    stats.dataset.ids = "";
    [smoother, tracker, ids, run] = [new FaceSmoother(), new Tracker(), new Set(), run + 1];
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
    let number = 0; // numbered when posted, in the order the tracker planned them
    const ours = run;
    const t = performance.now() / 1000; // the frame's time, for the filter
    let plan = null;
    inFlight += 1;
    try {
      const shrink = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      capture.width = Math.round(video.videoWidth * shrink);
      capture.height = Math.round(video.videoHeight * shrink);
      captured.drawImage(video, 0, 0, capture.width, capture.height);
      const gray = grayFrame(captured, capture.width, capture.height); // the sent frame, for the tracker
      const frame = await canvasBlob(capture, "image/jpeg", JPEG_QUALITY);
      // Planned just before the post (no await between), so the requests leave in plan order. The
      // boxes are in the sent frame's pixels, as the answer's are.
      number = ++sent;
      plan = tracker.plan(number, gray);
      const started = performance.now();
      const answer = await postImage("faces", frame, plan.boxes === null ? {} : { boxes: JSON.stringify(plan.boxes) });
      const now = performance.now();
      latencies = [...latencies.slice(1 - LATENCIES_KEPT), now - started];
      answered = [...answered.filter((at) => now - at < RATE_WINDOW_S * 1000), now];
      if (number > lastShown && stream && ours === run) {
        lastShown = number;
        const followed = tracker.update(plan, gray, answer.faces);
        const faces = smoothBox.checked ? smoother.smooth(followed, t) : followed;
        latest = { faces, width: answer.width, height: answer.height };
        count(plan, followed);
      } else if (ours === run) {
        tracker.unanswered(plan); // overtaken by a newer frame's answer: not shown, not followed from
      }
      clearError(error);
    } catch (e) {
      if (plan !== null && ours === run) tracker.unanswered(plan);
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

  // An answered frame: how many, how many with a face, detected or followed (data-detections,
  // data-given), every id shown (data-ids), and the tracker's cuts and implausible followed faces
  // (data-cuts, data-implausible), on the stats element for scripts and tests.
  function count(plan, faces) {
    const add = (key) => (stats.dataset[key] = String(Number(stats.dataset[key]) + 1));
    add("frames");
    if (faces.length > 0) add("withFace");
    add(plan.boxes === null ? "detections" : "given");
    for (const face of faces) ids.add(face.id);
    stats.dataset.ids = [...ids].sort((a, b) => a - b).join(" ");
    stats.dataset.cuts = String(tracker.stats.cuts); // why the tracker detected again, besides its period
    stats.dataset.implausible = String(tracker.stats.implausible);
    $("webcam-faces").textContent = String(faces.length);
    $("webcam-detected").textContent = `${stats.dataset.detections} of ${stats.dataset.frames}`;
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
      if (latest) drawFaces(context, latest.faces, { scale: width / latest.width, width, height, mirror });
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

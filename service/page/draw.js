// Drawing /faces answers onto a canvas, shared by the photo and the webcam views. The sizes, the
// pose arrow and the low-confidence ring follow vision.draw, with its constants (constants.js).

import {
  FONT_PER_FACE,
  FONT_PER_IMAGE,
  LINE_PER_FACE,
  LINE_PER_IMAGE,
  LOW_CONFIDENCE,
  NOSE_ARROW_PER_FACE,
  POSE_COLOR,
  RADIUS_PER_FACE,
  RADIUS_PER_IMAGE,
  RING_RADIUS,
} from "./constants.js";

// One colour per part of the face; the part comes from the keypoint's name in the answer.
export const PART_COLOURS = { eye: "#22d3ee", brow: "#fbbf24", nose: "#a3e635", mouth: "#f472b6" };
const BOX_COLOUR = "#2dd4bf";

export function partOf(name) {
  if (name.includes("eyebrow")) return "brow";
  if (name.includes("eye")) return "eye";
  if (name.includes("nose")) return "nose";
  return "mouth";
}

export const wordsOf = (name) => name.replaceAll("_", " ");

// A point the model is less sure of than LOW_CONFIDENCE is drawn as a ring, at least RING_RADIUS
// (CSS pixels here): a smaller ring is a dot to the eye.
export const isUnsure = (point) => point.confidence != null && point.confidence < LOW_CONFIDENCE;

// The head's pose is an arrow from the nose tip where the face points, NOSE_ARROW_PER_FACE face
// widths long for a face seen side-on (a dot for one facing the camera), in POSE_COLOR, which no
// part of the face is drawn in.

// vision.pose.nose_direction: where a face with this {yaw, pitch, roll} (degrees) points in the
// image, [x, y], of length the sine of its angle off the camera's axis.
export function noseDirection(pose) {
  const [yaw, pitch, roll] = [pose.yaw, pose.pitch, pose.roll].map((a) => (a * Math.PI) / 180);
  const [x, y] = [Math.sin(yaw) * Math.cos(pitch), -Math.sin(pitch)];
  return [Math.cos(roll) * x - Math.sin(roll) * y, Math.sin(roll) * x + Math.cos(roll) * y];
}

// A face's pose in words, for the page's tips: "yaw +12°, pitch -3°, roll +2°"; "" without one.
export function poseWords(pose) {
  if (pose == null) return "";
  const signed = (a) => `${a > 0 ? "+" : ""}${Math.round(a)}°`;
  return `yaw ${signed(pose.yaw)}, pitch ${signed(pose.pitch)}, roll ${signed(pose.roll)}`;
}

// A canvas sized to `width` x `height` CSS pixels, sharp on high-density screens; its 2D context
// draws in CSS pixels.
export function sizeCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  return context;
}

// Marks grow with the face they belong to, and never shrink below a share of the image's longer
// side: the rule of vision.draw.mark_sizes (the Python overlays'), with its constants. Sizes are in
// image pixels: the line width and the keypoint radius (whole pixels, at least 2) and the label's
// height in pixels (OpenCV's font scale, at least 0.4, x FONT_PIXELS).
const FONT_PIXELS = 22; // OpenCV's font scale 1.0 is about 22 px tall

// Python's round(): halves to even.
function roundHalfEven(value) {
  const down = Math.floor(value);
  const rest = value - down;
  return rest > 0.5 || (rest === 0.5 && down % 2 !== 0) ? down + 1 : down;
}

// vision.draw.mark_sizes: {line, radius, font} for a face `faceWidth` wide on an image of
// `imageWidth` x `imageHeight` pixels; font is OpenCV's scale.
export function markSizes(faceWidth, imageWidth, imageHeight) {
  const side = Math.max(imageWidth, imageHeight);
  const line = Math.max(2, roundHalfEven(Math.max(faceWidth * LINE_PER_FACE, side * LINE_PER_IMAGE)));
  const radius = Math.max(2, roundHalfEven(Math.max(faceWidth * RADIUS_PER_FACE, side * RADIUS_PER_IMAGE)));
  const font = Math.max(0.4, faceWidth * FONT_PER_FACE, side * FONT_PER_IMAGE);
  return { line, radius, font };
}

// A face's label: its id on video (`#3`, where the tracker gives one), else its place in the answer
// (`face 2`), then the detector's score (Haar gives none).
export function faceLabel(face, index) {
  const name = face.id == null ? `face ${index + 1}` : `#${face.id}`;
  return face.score == null ? name : `${name} · ${face.score.toFixed(2)}`;
}

// Draws every face (boxes, labels, keypoints) of an answer in image pixels onto a context in CSS
// pixels: `view` is {scale, width, height, mirror}, image pixel * scale = CSS pixel, `width` and
// `height` the canvas's CSS size (for mirroring, and the image's size for the marks). Returns the
// keypoints where they were drawn, for hovering: [{x, y, name, confidence, face}] in CSS pixels.
// A point below LOW_CONFIDENCE is a ring in its part's colour, the others are dots.
export function drawFaces(context, faces, view, { labels = true, highlight = null } = {}) {
  const { scale, width, height, mirror = false } = view;
  const px = (x) => (mirror ? width - x * scale : x * scale);
  const drawn = [];
  faces.forEach((face, index) => {
    const box = face.box;
    const sizes = markSizes(box.width, width / scale, height / scale);
    const [line, radius] = [sizes.line * scale, sizes.radius * scale];
    const left = mirror ? width - (box.x + box.width) * scale : box.x * scale;
    const [top, w, h] = [box.y * scale, box.width * scale, box.height * scale];
    context.lineJoin = "round";
    context.strokeStyle = "rgba(0, 0, 0, 0.45)";
    context.lineWidth = line + 2;
    context.strokeRect(left, top, w, h);
    context.strokeStyle = BOX_COLOUR;
    context.lineWidth = line;
    context.strokeRect(left, top, w, h);
    if (labels) label(context, faceLabel(face, index), left - line / 2, top - line / 2, sizes.font * FONT_PIXELS * scale);
    for (const point of face.keypoints) {
      const [x, y] = [px(point.x), point.y * scale];
      const lit = highlight && highlight.face === index && highlight.name === point.name;
      const colour = PART_COLOURS[partOf(point.name)];
      context.beginPath();
      const unsure = isUnsure(point);
      const drawnRadius = unsure ? Math.max(radius, RING_RADIUS) : radius;
      context.arc(x, y, lit ? drawnRadius * 1.8 : drawnRadius, 0, 2 * Math.PI);
      if (unsure) {
        context.lineWidth = Math.max(1, radius / 3) + 2;
        context.strokeStyle = "rgba(0, 0, 0, 0.7)";
        context.stroke();
        context.lineWidth = Math.max(1, radius / 3);
        context.strokeStyle = lit ? "#fff" : colour;
      } else {
        context.fillStyle = colour;
        context.fill();
        context.lineWidth = lit ? 2 : Math.max(1, radius / 3);
        context.strokeStyle = lit ? "#fff" : "rgba(0, 0, 0, 0.7)";
      }
      context.stroke();
      drawn.push({ x, y, name: point.name, confidence: point.confidence, face: index });
    }
    const nose = face.keypoints.find((point) => point.name === "nose_tip");
    if (face.pose != null && nose) {
      const [dx, dy] = noseDirection(face.pose).map((d) => d * box.width * NOSE_ARROW_PER_FACE * scale);
      arrow(context, px(nose.x), nose.y * scale, mirror ? -dx : dx, dy, line);
    }
  });
  return drawn;
}

// An arrow from (x, y) by (dx, dy) CSS pixels, `line` wide, its head 0.3 of its length (as
// OpenCV's arrowedLine draws it in the Python overlays).
function arrow(context, x, y, dx, dy, line) {
  const length = Math.hypot(dx, dy);
  if (length < 1) return;
  const [ux, uy] = [dx / length, dy / length];
  const head = 0.3 * length;
  const [ex, ey] = [x + dx, y + dy];
  context.beginPath();
  context.moveTo(x, y);
  context.lineTo(ex, ey);
  for (const side of [1, -1]) {
    const angle = (side * Math.PI) / 4;
    const [hx, hy] = [ux * Math.cos(angle) - uy * Math.sin(angle), ux * Math.sin(angle) + uy * Math.cos(angle)];
    context.moveTo(ex, ey);
    context.lineTo(ex - hx * head, ey - hy * head);
  }
  context.lineCap = "round";
  context.strokeStyle = "rgba(0, 0, 0, 0.45)";
  context.lineWidth = line + 2;
  context.stroke();
  context.strokeStyle = POSE_COLOR;
  context.lineWidth = line;
  context.stroke();
}

// A label `size` CSS pixels tall (the text a little smaller) on the box's top edge, above it where
// there is room.
function label(context, text, left, top, size) {
  const font = Math.max(10, size * 0.8);
  context.font = `600 ${font}px system-ui, sans-serif`;
  const [width, height] = [context.measureText(text).width + font * 0.8, font * 1.6];
  const y = top >= height ? top - height : top;
  context.fillStyle = BOX_COLOUR;
  context.beginPath();
  context.roundRect(left, y, width, height, font / 3);
  context.fill();
  context.fillStyle = "#042f2e";
  context.textBaseline = "middle";
  context.fillText(text, left + font * 0.4, y + height / 2);
}

// The drawn point nearest to (x, y), within `reach` CSS pixels, or null.
export function nearestPoint(points, x, y, reach = 10) {
  let best = null;
  let bestDistance = reach;
  for (const point of points) {
    const distance = Math.hypot(point.x - x, point.y - y);
    if (distance <= bestDistance) [best, bestDistance] = [point, distance];
  }
  return best;
}

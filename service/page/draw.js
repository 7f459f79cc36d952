// Drawing /faces answers onto a canvas, shared by the photo and the webcam views.

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

// Draws every face (boxes, scores, keypoints) of an answer in photo pixels onto a context in CSS
// pixels: `view` is {scale, width, mirror}, photo pixel * scale = CSS pixel, `width` the canvas's
// CSS width (for mirroring). Returns the keypoints where they were drawn, for hovering:
// [{x, y, name, face}] in CSS pixels.
export function drawFaces(context, faces, view, { labels = true, highlight = null } = {}) {
  const { scale, width, mirror = false } = view;
  const px = (x) => (mirror ? width - x * scale : x * scale);
  const drawn = [];
  faces.forEach((face, index) => {
    const box = face.box;
    const left = mirror ? width - (box.x + box.width) * scale : box.x * scale;
    const [top, w, h] = [box.y * scale, box.width * scale, box.height * scale];
    context.lineJoin = "round";
    context.strokeStyle = "rgba(0, 0, 0, 0.45)";
    context.lineWidth = 4;
    context.strokeRect(left, top, w, h);
    context.strokeStyle = BOX_COLOUR;
    context.lineWidth = 2;
    context.strokeRect(left, top, w, h);
    if (labels) label(context, `face ${index + 1}${face.score == null ? "" : ` · ${face.score.toFixed(2)}`}`, left, top);
    const radius = Math.min(5, Math.max(2.5, w / 70));
    for (const point of face.keypoints) {
      const [x, y] = [px(point.x), point.y * scale];
      const lit = highlight && highlight.face === index && highlight.name === point.name;
      context.beginPath();
      context.arc(x, y, lit ? radius * 1.8 : radius, 0, 2 * Math.PI);
      context.fillStyle = PART_COLOURS[partOf(point.name)];
      context.fill();
      context.lineWidth = lit ? 2 : 1.2;
      context.strokeStyle = lit ? "#fff" : "rgba(0, 0, 0, 0.7)";
      context.stroke();
      drawn.push({ x, y, name: point.name, face: index });
    }
  });
  return drawn;
}

function label(context, text, left, top) {
  context.font = "600 12px system-ui, sans-serif";
  const width = context.measureText(text).width + 10;
  const y = top >= 20 ? top - 20 : top;
  context.fillStyle = BOX_COLOUR;
  context.beginPath();
  context.roundRect(left - 1, y, width, 19, 4);
  context.fill();
  context.fillStyle = "#042f2e";
  context.textBaseline = "middle";
  context.fillText(text, left + 4, y + 10);
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

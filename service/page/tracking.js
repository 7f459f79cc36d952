// Following faces across video frames, so that the detector runs only now and then.
//
// A port of clients/tracking.py (the Python webcam client's tracker), with its constants (generated
// into constants.js from Python's) and formulas: change one, change the other (tests/test_page.py
// checks that both trackers plan a sequence of frames and give ids alike, and replay the shared
// vectors alike). The page detects a face once
// and then follows it from its own keypoints: the box for the next frame comes from the last
// answer's 15 points (moved with their centroid, scaled with their spread, eyes from the eye-centre
// points) and is posted as /faces' `boxes`, so the service skips YuNet. YuNet runs again
//
// - every DETECT_EVERY frames (a face that walked in is found within that many frames),
// - when there is no face to follow,
// - when a followed face's points look wrong (eyes too close or too far apart for the box, the
//   points' centre leaving the box), the model is unsure of them (their mean confidence under
//   FOLLOW_MIN_CONFIDENCE) or its box's centre leaves the frame, and
// - when a face's region changed abruptly since the answer it is followed from (a cut to another
//   person in the same place): the gray region, shrunk to PATCH x PATCH, correlates below
//   CUT_CORRELATION with the one the last answer saw. That face's track ends (a new id).
//
// Each face gets an `id`, 1, 2, 3, ... in order of first sight, never reused in a run: a detection
// takes the id of the track whose box (where it was, or where its velocity took it) it overlaps most
// (IoU), else of the nearest track within MATCH_CENTRE box widths if its face region looks like that
// track's, and a face the detector missed for a moment gets its id back if it is found near where
// it was within REMEMBER_FRAMES frames. An answer that fails the checks is not followed from. Frames are gray images {width, height, data} (grayFrame); null skips the
// frame checks (the cut check and "the box left the frame"), as Python's image=None does.

import {
  CUT_CORRELATION,
  DETECT_EVERY,
  EYE_CENTRES,
  EYE_RATIO_RANGE,
  FOLLOW_MIN_CONFIDENCE,
  MATCH_CENTRE,
  MATCH_IOU,
  PATCH,
  REMEMBER_FRAMES,
  SEARCH,
} from "./constants.js";

const [RIGHT_EYE, LEFT_EYE] = EYE_CENTRES;

// vision.faces.iou: the overlap of two {x, y, width, height} boxes over their union.
function iou(a, b) {
  const ix = Math.max(0.0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const iy = Math.max(0.0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0.0;
}

const centre = (box) => [box.x + box.width / 2, box.y + box.height / 2];
const round2 = (v) => Math.round(v * 100) / 100;

// A face's keypoints as [[x, y], ...] and the indices of its eye centres (by name, from the answer).
function keypointsOf(face) {
  const names = face.keypoints.map((k) => k.name);
  return { points: face.keypoints.map((k) => [k.x, k.y]), right: names.indexOf(RIGHT_EYE), left: names.indexOf(LEFT_EYE) };
}

const boxOf = (face) => ({ x: face.box.x, y: face.box.y, width: face.box.width, height: face.box.height });

// --- the frame: gray, as OpenCV's BGR2GRAY ----------------------------------------------------------

// The gray picture of a 2D context's `width` x `height` pixels (ask the context with
// willReadFrequently, or each read is a copy back from the GPU).
export function grayFrame(context, width, height) {
  const rgba = context.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height);
  for (let i = 0, j = 0; j < data.length; i += 4, j++) {
    data[j] = Math.round(0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2]);
  }
  return { width, height, data };
}

// cv2.resize(..., INTER_AREA)'s weights along one axis: for each of `size` outputs, the source
// indices and their shares of a cell `length / size` wide.
function areaWeights(length, size) {
  const scale = length / size;
  const weights = [];
  for (let d = 0; d < size; d++) {
    const [from, to] = [d * scale, Math.min((d + 1) * scale, length)];
    const cell = [];
    for (let s = Math.floor(from); s < Math.ceil(to); s++) {
      const share = Math.min(to, s + 1) - Math.max(from, s);
      if (share > 1e-3) cell.push([s, share / (to - from)]);
    }
    weights.push(cell);
  }
  return weights;
}

// clients.tracking.gray_patch: the square around the box (its longer side), `margin` x its side more
// on each side (edges replicated beyond the frame), shrunk to PATCH pixels a side (more with the
// margin) by area averaging (cv2.INTER_AREA's weights): {size, data: Float32Array}; null when the
// square is not wholly in the frame or the region is flat.
export function grayPatch(image, box, margin = 0.0) {
  const { width, height } = image;
  const side = Math.max(box.width, box.height);
  const [cx, cy] = centre(box);
  const [left, top] = [cx - side / 2, cy - side / 2];
  if (left < 0 || top < 0 || left + side > width || top + side > height || side < 4) return null;
  const grow = margin * side;
  const [x0, y0] = [Math.trunc(left - grow), Math.trunc(top - grow)];
  const [x1, y1] = [Math.ceil(left + side + grow), Math.ceil(top + side + grow)];
  const size = Math.round(PATCH * (1 + 2 * margin));
  const [columns, rows] = [areaWeights(x1 - x0, size), areaWeights(y1 - y0, size)];
  const clamp = (v, high) => Math.min(Math.max(v, 0), high - 1);
  const data = new Float32Array(size * size);
  let [sum, squares] = [0, 0];
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      let value = 0;
      for (const [sy, wy] of rows[r]) {
        const row = clamp(y0 + sy, height) * width;
        for (const [sx, wx] of columns[c]) value += wy * wx * image.data[row + clamp(x0 + sx, width)];
      }
      value = Math.round(value); // cv2.resize keeps uint8
      data[r * size + c] = value;
      sum += value;
      squares += value * value;
    }
  }
  const mean = sum / data.length;
  const std = Math.sqrt(Math.max(squares / data.length - mean * mean, 0));
  return std < 1.0 ? null : { size, data };
}

// The best normalized correlation of `patch` at every place in `around` (cv2.matchTemplate with
// TM_CCOEFF_NORMED, then its maximum).
function bestCorrelation(around, patch) {
  const n = patch.size * patch.size;
  const mean = patch.data.reduce((a, b) => a + b, 0) / n;
  const centred = patch.data.map((v) => v - mean);
  const energy = centred.reduce((a, v) => a + v * v, 0);
  let best = -1;
  for (let dy = 0; dy + patch.size <= around.size; dy++) {
    for (let dx = 0; dx + patch.size <= around.size; dx++) {
      let [sum, squares, cross] = [0, 0, 0];
      for (let r = 0; r < patch.size; r++) {
        for (let c = 0; c < patch.size; c++) {
          const v = around.data[(dy + r) * around.size + dx + c];
          sum += v;
          squares += v * v;
          cross += v * centred[r * patch.size + c];
        }
      }
      const spread = squares - (sum * sum) / n;
      if (spread > 1e-6 && energy > 1e-6) best = Math.max(best, cross / Math.sqrt(spread * energy));
    }
  }
  return best;
}

// clients.tracking.similarity: how much `patch` (an earlier frame's grayPatch) looks like what is
// now at `box`, allowing a move of up to SEARCH x its size; 1 when either cannot be judged.
export function similarity(image, box, patch) {
  const around = grayPatch(image, box, SEARCH);
  if (around === null || patch === null) return 1.0;
  return bestCorrelation(around, patch);
}

// --- where a face's box sits relative to its points ---------------------------------------------

// The points' centroid, spread (RMS distance from it) and roll (radians, from the eyes).
function frameOf(points, right, left) {
  const centroid = [0, 1].map((axis) => points.reduce((a, p) => a + p[axis], 0) / points.length);
  const squares = points.reduce((a, [x, y]) => a + (x - centroid[0]) ** 2 + (y - centroid[1]) ** 2, 0);
  const spread = Math.max(Math.sqrt(squares / points.length), 1e-3);
  const [[rx, ry], [lx, ly]] = [points[right], points[left]];
  return { centroid, spread, roll: Math.atan2(ly - ry, lx - rx) };
}

// clients.tracking.Shape: the box relative to the keypoints, in units of their spread and in the
// face's own (eye-levelled) frame, kept from the detection so each followed box is YuNet-like.
class Shape {
  static of(box, points, right, left) {
    const { centroid, spread, roll } = frameOf(points, right, left);
    const [cx, cy] = centre(box);
    const [dx, dy] = [(cx - centroid[0]) / spread, (cy - centroid[1]) / spread];
    const [cos, sin] = [Math.cos(-roll), Math.sin(-roll)];
    const shape = new Shape();
    shape.offset = [cos * dx - sin * dy, sin * dx + cos * dy];
    shape.width = box.width / spread;
    shape.height = box.height / spread;
    const eyes = Math.hypot(points[left][0] - points[right][0], points[left][1] - points[right][1]);
    shape.eyeRatio = eyes / box.width;
    return shape;
  }

  box(points, right, left) {
    const { centroid, spread, roll } = frameOf(points, right, left);
    const [cos, sin] = [Math.cos(roll), Math.sin(roll)];
    const [dx, dy] = this.offset;
    const cx = centroid[0] + (cos * dx - sin * dy) * spread;
    const cy = centroid[1] + (sin * dx + cos * dy) * spread;
    const [w, h] = [this.width * spread, this.height * spread];
    return { x: cx - w / 2, y: cy - h / 2, width: w, height: h };
  }
}

class Track {
  constructor(id, box, kp, score, frame) {
    this.id = id;
    this.shape = Shape.of(box, kp.points, kp.right, kp.left);
    this.score = score;
    this.cut = false; // its region changed abruptly: detect, and keep its id only if it is still this face
    this.box = box; // the last answer's box, keypoints, face region (grayPatch) and frame
    this.kp = kp;
    this.patch = null;
    this.anchor = null; // its face region at its last detection (a box the tracker did not move)
    this.frame = frame;
    this.velocity = [0, 0]; // its points' centroid, pixels per frame, over the last two answers
  }

  // Where the face has moved by frame `index` since its last answer, at its velocity.
  ahead(index) {
    return this.velocity.map((v) => v * (index - this.frame));
  }

  // Where to look for it in frame `index`: its last box moved on at its velocity, and the last box itself.
  places(index) {
    const [dx, dy] = this.ahead(index);
    return [{ x: this.box.x + dx, y: this.box.y + dy, width: this.box.width, height: this.box.height }, this.box];
  }

  // The /faces `boxes` entry to follow this face with in frame `index`.
  nextBox(index) {
    const [dx, dy] = this.ahead(index);
    const { right, left } = this.kp;
    const points = this.kp.points.map(([x, y]) => [x + dx, y + dy]);
    const box = this.shape.box(points, right, left);
    return {
      x: round2(box.x),
      y: round2(box.y),
      width: round2(box.width),
      height: round2(box.height),
      eyes: [points[right].map(round2), points[left].map(round2)],
      ...(this.score == null ? {} : { score: this.score }), // Haar gives none: clients.answers.given_box
    };
  }

  // Do a followed face's points still look like a face in its box, and is the model sure of them?
  plausible(face) {
    const confidence = face.keypoints.map((k) => k.confidence).filter((c) => c != null);
    if (confidence.length && confidence.reduce((a, b) => a + b, 0) / confidence.length < FOLLOW_MIN_CONFIDENCE) return false;
    const { points, right, left } = keypointsOf(face);
    const box = boxOf(face);
    const eyes = Math.hypot(points[left][0] - points[right][0], points[left][1] - points[right][1]) / Math.max(box.width, 1.0);
    const [low, high] = EYE_RATIO_RANGE;
    const { centroid: [cx, cy] } = frameOf(points, right, left);
    const inside = box.x <= cx && cx <= box.x + box.width && box.y <= cy && cy <= box.y + box.height;
    return inside && low * this.shape.eyeRatio <= eyes && eyes <= high * this.shape.eyeRatio;
  }
}

// The track that this detection in frame `index` may be, and whether it is in its place: the one
// whose places overlap it most ({track, overlapping: true}), else the one with the nearest centre
// (overlapping: false; the caller checks that it looks the same).
function closest(tracks, box, index) {
  const scored = tracks.map((track) => {
    const places = track.places(index); // each the best over the track's places
    const overlap = Math.max(...places.map((place) => iou(place, box)));
    const distance = Math.min(...places.map((place) => Math.hypot(centre(place)[0] - centre(box)[0], centre(place)[1] - centre(box)[1])));
    return { overlap, distance, track };
  });
  let best = null;
  for (const s of scored) if (best === null || s.overlap > best.overlap) best = s;
  if (best !== null && best.overlap >= MATCH_IOU) return { track: best.track, overlapping: true };
  let near = null;
  for (const s of scored) if (near === null || s.distance < near.distance) near = s;
  if (near !== null && near.distance < MATCH_CENTRE * Math.max(near.track.box.width, box.width)) return { track: near.track, overlapping: false };
  return { track: null, overlapping: false };
}

// clients.tracking.Tracker._another_face: does the region at `box` look like neither of the track's
// faces (its last one, which may be off the face after a fast move, and the one at its last detection)?
function anotherFace(track, image, box) {
  if (image === null) return false;
  return [track.patch, track.anchor].every((patch) => similarity(image, box, patch) < CUT_CORRELATION);
}

// Is the box's centre inside the frame? (A face that is leaving is found again by detection.)
function inFrame(box, image) {
  if (image === null) return true;
  const [cx, cy] = centre(box);
  return cx >= 0 && cx < image.width && cy >= 0 && cy < image.height;
}

// Decides, frame by frame, "detect" or "these boxes", and gives each face its id: plan(index,
// image) before a frame is sent, update(plan, image, faces) with its answer, in frame order (an
// answer that is not used: unanswered(plan)). A plan is {frame, boxes, ids}: boxes null = detect.
export class Tracker {
  constructor(detectEvery = DETECT_EVERY, follow = true) {
    if (!(detectEvery >= 1)) throw new RangeError("detectEvery must be >= 1");
    this.detectEvery = detectEvery;
    this.follow = follow;
    this.tracks = [];
    this.lost = []; // missed by the detector lately: their ids may come back
    this.nextId = 1;
    this.lastDetection = -1e9; // the frame of the last planned detection
    this.redetect = false;
    this.stats = { frames: 0, detections: 0, cuts: 0, implausible: 0 };
  }

  plan(index, image = null) {
    this.stats.frames += 1;
    for (const track of image !== null ? this.tracks : []) {
      // every() stops at the first place the face is still seen: one check per frame, as a rule
      if (!track.cut && track.places(index).every((box) => similarity(image, box, track.patch) < CUT_CORRELATION)) {
        track.cut = true;
        this.stats.cuts += 1;
      }
    }
    if (this.follow && this.tracks.length && !this.redetect && index - this.lastDetection < this.detectEvery) {
      const boxes = this.tracks.map((track) => track.nextBox(index));
      if (!this.tracks.some((track) => track.cut) && boxes.every((box) => inFrame(box, image))) {
        return { frame: index, boxes, ids: this.tracks.map((track) => track.id) };
      }
    }
    this.lastDetection = index;
    this.redetect = false;
    this.stats.detections += 1;
    return { frame: index, boxes: null, ids: [] };
  }

  // A frame that got no answer (an error, a busy service, an answer overtaken by a newer one): a
  // detection it was for is still owed.
  unanswered(plan) {
    if (plan.boxes === null) this.redetect = true;
  }

  // The answer's faces, each with its `id`; the tracks move on to them.
  update(plan, image, faces) {
    return plan.boxes === null ? this.detected(plan.frame, image, faces) : this.followed(plan, image, faces);
  }

  detected(index, image, faces) {
    this.lost = this.lost.filter((t) => index - t.frame <= REMEMBER_FRAMES);
    const candidates = this.tracks.slice();
    const [out, kept] = [[], []];
    const area = (f) => f.box.width * f.box.height;
    for (const face of faces.slice().sort((a, b) => area(b) - area(a))) {
      // big faces choose first
      const [box, kp] = [boxOf(face), keypointsOf(face)];
      let { track, overlapping } = closest(candidates, box, index);
      if (track === null) ({ track, overlapping } = closest(this.lost, box, index));
      // Is it the same face? Another person in the track's place (a cut) ends it.
      if (track !== null && anotherFace(track, image, box)) {
        if (overlapping) {
          const from = candidates.includes(track) ? candidates : this.lost;
          from.splice(from.indexOf(track), 1); // its place is someone else's now
        }
        track = null;
      }
      if (track === null) {
        track = new Track(this.nextId++, box, kp, face.score ?? null, index);
      } else {
        const from = candidates.includes(track) ? candidates : this.lost;
        from.splice(from.indexOf(track), 1);
        track.shape = Shape.of(box, kp.points, kp.right, kp.left);
        track.score = face.score ?? null;
        track.cut = false;
      }
      Tracker.moved(track, index, image, box, kp);
      track.anchor = track.patch;
      kept.push(track);
      out.push({ id: track.id, ...face });
    }
    this.lost.push(...candidates.filter((t) => !t.cut)); // missed this time: remembered a while, with their ids
    this.tracks = kept;
    return out.sort((a, b) => a.id - b.id);
  }

  followed(plan, image, faces) {
    if (faces.length !== plan.ids.length) {
      // not one face per box: match by place instead
      return faces.flatMap((face) => {
        const { track } = closest(this.tracks, boxOf(face), plan.frame);
        return track === null ? [] : [{ id: track.id, ...face }];
      });
    }
    const out = [];
    faces.forEach((face, i) => {
      const track = this.tracks.find((t) => t.id === plan.ids[i]);
      if (!track) return; // gone (not found, or a cut) at a detection answered meanwhile
      if (plan.frame > track.frame) {
        if (track.plausible(face)) {
          Tracker.moved(track, plan.frame, image, boxOf(face), keypointsOf(face));
        } else {
          // not followed from: the detection it calls for is matched against the last face believed
          this.stats.implausible += 1;
          this.redetect = true;
        }
      }
      out.push({ id: track.id, ...face });
    });
    return out;
  }

  static moved(track, index, image, box, kp) {
    if (index > track.frame) {
      const mean = (points, axis) => points.reduce((a, p) => a + p[axis], 0) / points.length;
      track.velocity = [0, 1].map((axis) => (mean(kp.points, axis) - mean(track.kp.points, axis)) / (index - track.frame));
    }
    track.box = box;
    track.kp = kp;
    track.frame = index;
    track.patch = image !== null ? grayPatch(image, box) : null;
  }
}

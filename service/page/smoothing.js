// Steadier keypoints and head poses on video: a One Euro filter per face, faces followed from
// frame to frame. A face's head pose has a filter of its own, its speeds in DEGREES_PER_FACE_WIDTH
// per second; a null pose passes on, and the pose filter starts afresh when there is one again.
// A face with an `id` (the webcam view's tracker gives each one: tracking.js) keeps the filter of
// that id, and a new id, such as a new person after a cut, starts afresh; faces without ids are
// matched to the previous frame's by box overlap.
//
// A line-by-line twin of clients/smoothing.py (the Python webcam client's filter), with the same
// defaults: change one, change the other (tests/test_page.py checks that the constants agree and
// that both smooth a sequence of answers alike). The One Euro filter (Casiez, Roussel and Vogel,
// CHI 2012) is a low-pass filter whose cutoff rises with speed: heavy smoothing while the face
// holds still, little lag once it moves. Speeds are in face widths per second.

export const MIN_CUTOFF_HZ = 1.0; // the cutoff while still: lower is steadier and slower to follow
export const BETA = 4.0; // how fast the cutoff rises with speed (per face width per second)
export const DERIVATIVE_CUTOFF_HZ = 1.0; // smoothing of the speed estimate itself
// A head turning this many degrees moves its keypoints about one face width: the pose's unit of speed.
export const DEGREES_PER_FACE_WIDTH = 90.0;

// A face is the same face in the next frame when their boxes overlap at least this much, and is
// forgotten after this long unseen (so that a face that comes back starts afresh).
export const MATCH_IOU = 0.3;
export const FORGET_AFTER_S = 0.5;

// The exponential smoothing factor of a first-order low-pass at `cutoffHz` for a step `dt`.
export function smoothingFactor(cutoffHz, dt) {
  const tau = 1.0 / (2 * Math.PI * cutoffHz);
  return 1.0 / (1.0 + tau / dt);
}

// vision.faces.iou: the overlap of two {x, y, width, height} boxes over their union.
export function iou(a, b) {
  const ix = Math.max(0.0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x));
  const iy = Math.max(0.0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0.0;
}

// Filters an array of values (a face's box corners and keypoints, flattened) sampled over time.
export class OneEuroFilter {
  constructor(minCutoff = MIN_CUTOFF_HZ, beta = BETA, dCutoff = DERIVATIVE_CUTOFF_HZ) {
    if (!(minCutoff > 0) || !(beta >= 0) || !(dCutoff > 0)) {
      throw new RangeError("the One Euro filter needs min_cutoff > 0, beta >= 0 and d_cutoff > 0");
    }
    this.minCutoff = minCutoff;
    this.beta = beta;
    this.dCutoff = dCutoff;
    this.t = null;
    this.value = null;
    this.speed = null;
  }

  // The filtered `value` at time `t` (seconds); `scale` is the unit speeds are measured in (a
  // face's width, in pixels). A time that does not advance returns the last output.
  filter(value, t, scale = 1.0) {
    if (this.value === null || this.value.length !== value.length) {
      this.t = t;
      this.value = value.slice();
      this.speed = value.map(() => 0);
      return this.value.slice();
    }
    const dt = t - this.t;
    if (dt <= 0) {
      return this.value.slice();
    }
    const aSpeed = smoothingFactor(this.dCutoff, dt);
    for (let i = 0; i < value.length; i++) {
      const speed = (value[i] - this.value[i]) / dt / scale;
      this.speed[i] += aSpeed * (speed - this.speed[i]);
      const cutoff = this.minCutoff + this.beta * Math.abs(this.speed[i]);
      this.value[i] += smoothingFactor(cutoff, dt) * (value[i] - this.value[i]);
    }
    this.t = t;
    return this.value.slice();
  }
}

function boxCorners(box) {
  return [box.x, box.y, box.x + box.width, box.y + box.height];
}

function asBox(corners) {
  const [x0, y0, x1, y1] = corners;
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

// Box.as_dict(): whole pixels, truncated as Python's int() does.
function boxAsDict(box) {
  return { x: Math.trunc(box.x), y: Math.trunc(box.y), width: Math.trunc(box.width), height: Math.trunc(box.height) };
}

const round2 = (v) => Math.round(v * 100) / 100;

// One face followed across frames: its filter and where it was last seen.
class Track {
  constructor(box, lastSeen, filter, id = null, poseFilter = new OneEuroFilter()) {
    this.box = box;
    this.lastSeen = lastSeen;
    this.filter = filter;
    this.id = id; // the tracker's id of the face, when it has one
    this.poseFilter = poseFilter;
  }
}

// Smooths /faces answers frame after frame: each face is matched to the face it was in the
// previous frames (by box overlap) and its box and keypoints pass through that face's filter.
export class FaceSmoother {
  constructor(minCutoff = MIN_CUTOFF_HZ, beta = BETA) {
    new OneEuroFilter(minCutoff, beta); // refuse bad parameters now, not at the first face
    this.minCutoff = minCutoff;
    this.beta = beta;
    this.tracks = [];
  }

  // The faces of the frame at time `t` (seconds), as /faces gives them, smoothed.
  smooth(faces, t) {
    this.tracks = this.tracks.filter((track) => t - track.lastSeen <= FORGET_AFTER_S);
    const free = this.tracks.slice();
    const smoothed = [];
    const area = (f) => f.box.width * f.box.height;
    for (const face of faces.slice().sort((a, b) => area(b) - area(a))) {
      // big faces choose first
      const box = asBox(boxCorners(face.box));
      let track = null;
      if (face.id != null) {
        track = free.find((candidate) => candidate.id === face.id) ?? null;
      } else {
        for (const candidate of free) {
          if (track === null || iou(candidate.box, box) > iou(track.box, box)) track = candidate;
        }
        if (track !== null && iou(track.box, box) < MATCH_IOU) track = null;
      }
      if (track === null) {
        const [filter, poseFilter] = [0, 1].map(() => new OneEuroFilter(this.minCutoff, this.beta));
        track = new Track(box, t, filter, face.id ?? null, poseFilter);
        this.tracks.push(track);
      } else {
        free.splice(free.indexOf(track), 1);
      }
      smoothed.push(this.smoothFace(track, face, t));
    }
    return smoothed;
  }

  smoothFace(track, face, t) {
    const points = face.keypoints.flatMap((k) => [k.x, k.y]);
    const values = track.filter.filter([...boxCorners(face.box), ...points], t, Math.max(face.box.width, 1.0));
    track.box = asBox(values.slice(0, 4));
    track.lastSeen = t;
    const keypoints = face.keypoints.map((k, i) => ({
      ...k,
      x: round2(values[4 + 2 * i]),
      y: round2(values[5 + 2 * i]),
    }));
    const box = Object.fromEntries(Object.entries(boxAsDict(track.box)).map(([key, value]) => [key, round2(value)]));
    const smoothed = { ...face, box, keypoints };
    if ("pose" in face) smoothed.pose = this.smoothPose(track, face.pose, t);
    return smoothed;
  }

  smoothPose(track, pose, t) {
    if (pose == null) {
      // no pose now: the next one starts afresh
      track.poseFilter = new OneEuroFilter(this.minCutoff, this.beta);
      return null;
    }
    const angles = track.poseFilter.filter([pose.yaw, pose.pitch, pose.roll], t, DEGREES_PER_FACE_WIDTH);
    const round1 = (v) => Math.round(v * 10) / 10;
    return { yaw: round1(angles[0]), pitch: round1(angles[1]), roll: round1(angles[2]) };
  }
}

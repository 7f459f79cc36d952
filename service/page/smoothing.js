// Steadier keypoints and head poses on video: a One Euro filter per face, faces followed from
// frame to frame by their ids. Each face has the `id` the webcam view's tracker gave it
// (tracking.js) and keeps the filter of that id; a new id, such as a new person after a cut, starts
// afresh, and so does an id unseen for FORGET_AFTER_S. A face's head pose has a filter of its own,
// its speeds in DEGREES_PER_FACE_WIDTH per second; a null pose passes on, and the pose filter
// starts afresh when there is one again.
//
// A line-by-line twin of clients/smoothing.py (the Python webcam client's filter), with its defaults
// (generated into constants.js from Python's): change one, change the other (tests/test_page.py
// checks that both smooth a sequence of answers alike, and the shared vectors alike). The One Euro filter (Casiez, Roussel and Vogel,
// CHI 2012) is a low-pass filter whose cutoff rises with speed: heavy smoothing while the face
// holds still, little lag once it moves. Speeds are in face widths per second.

import { BETA, DEGREES_PER_FACE_WIDTH, DERIVATIVE_CUTOFF_HZ, FORGET_AFTER_S, MIN_CUTOFF_HZ } from "./constants.js";

// The exponential smoothing factor of a first-order low-pass at `cutoffHz` for a step `dt`.
export function smoothingFactor(cutoffHz, dt) {
  const tau = 1.0 / (2 * Math.PI * cutoffHz);
  return 1.0 / (1.0 + tau / dt);
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

// The box between two corners, in whole pixels (truncated, as Python's Box.as_dict and the answers' boxes).
function wholeBox(corners) {
  const [x0, y0, x1, y1] = corners;
  return { x: Math.trunc(x0), y: Math.trunc(y0), width: Math.trunc(x1 - x0), height: Math.trunc(y1 - y0) };
}

const round2 = (v) => Math.round(v * 100) / 100;

// One face followed across frames: its filters and when it was last seen.
class Track {
  constructor(lastSeen, filter, poseFilter) {
    this.lastSeen = lastSeen;
    this.filter = filter;
    this.poseFilter = poseFilter;
  }
}

// Smooths /faces answers frame after frame: each face's box and keypoints pass through the filter
// of its id, its pose through a filter of its own.
export class FaceSmoother {
  constructor(minCutoff = MIN_CUTOFF_HZ, beta = BETA) {
    new OneEuroFilter(minCutoff, beta); // refuse bad parameters now, not at the first face
    this.minCutoff = minCutoff;
    this.beta = beta;
    this.tracks = new Map(); // by the faces' ids
  }

  // The faces of the frame at time `t` (seconds), each with its id, smoothed, in their order.
  smooth(faces, t) {
    if (faces.some((face) => face.id == null)) {
      throw new RangeError("the smoother follows faces by their ids: track them first (tracking.js)");
    }
    for (const [id, track] of this.tracks) if (t - track.lastSeen > FORGET_AFTER_S) this.tracks.delete(id);
    return faces.map((face) => this.smoothFace(this.track(face.id, t), face, t));
  }

  track(id, t) {
    if (!this.tracks.has(id)) this.tracks.set(id, new Track(t, this.filter(), this.filter()));
    return this.tracks.get(id);
  }

  filter() {
    return new OneEuroFilter(this.minCutoff, this.beta);
  }

  smoothFace(track, face, t) {
    const points = face.keypoints.flatMap((k) => [k.x, k.y]);
    const values = track.filter.filter([...boxCorners(face.box), ...points], t, Math.max(face.box.width, 1.0));
    track.lastSeen = t;
    const keypoints = face.keypoints.map((k, i) => ({
      ...k,
      x: round2(values[4 + 2 * i]),
      y: round2(values[5 + 2 * i]),
    }));
    return { ...face, box: wholeBox(values.slice(0, 4)), keypoints, pose: this.smoothPose(track, face.pose, t) };
  }

  smoothPose(track, pose, t) {
    if (pose == null) {
      // no pose now: the next one starts afresh
      track.poseFilter = this.filter();
      return null;
    }
    const angles = track.poseFilter.filter([pose.yaw, pose.pitch, pose.roll], t, DEGREES_PER_FACE_WIDTH);
    const round1 = (v) => Math.round(v * 10) / 10;
    return { yaw: round1(angles[0]), pitch: round1(angles[1]), roll: round1(angles[2]) };
  }
}

"""The JSON answers of the image endpoints, as pydantic models: BentoML serializes them and
publishes their schemas in /docs.json, so the document and the answers cannot drift apart."""

from typing import Literal

from pydantic import BaseModel, Field

from vision.keypoints import CONFIDENCE_RADIUS_PX, KEYPOINT_NAMES, NUM_KEYPOINTS
from vision.signatures import DETECTORS, GIVEN_DETECTOR

KeypointName = Literal[KEYPOINT_NAMES]


class DigitAnswer(BaseModel):
    digit: int = Field(ge=0, le=9, description="the most probable digit")
    confidence: float = Field(ge=0, le=1, description="its probability")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="P(0) ... P(9)")
    model: Literal["cnn", "mlp"] = Field(description="the model that answered")
    input_png: str | None = Field(None, description="with debug=true: the 28x28 image the model saw, base64 PNG")


class NumberDigit(BaseModel):
    digit: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1)
    box: "FaceBox" = Field(description="where the digit is, photo pixels")
    input_png: str | None = Field(None, description="with debug=true: the 28x28 image the model saw, base64 PNG")


class LeftOut(BaseModel):
    kind: Literal["line", "edge", "mark", "not a digit"] = Field(
        description="a line (ruled paper, an underline, a table's rule), the page's edge, a mark too small or"
        " too tall for a digit or a crossing-out, or a stroke the model does not read as a digit"
    )
    box: "FaceBox" = Field(description="where it is, photo pixels")


class NumberAnswer(BaseModel):
    number: str = Field(description="the digits, left to right")
    digits: list[NumberDigit]
    left_out: list[LeftOut] = Field(description="ink that was not read as a digit, and why")
    model: Literal["cnn", "mlp"]


class Keypoint(BaseModel):
    name: KeypointName
    x: float = Field(description="pixels from the image's left edge")
    y: float = Field(description="pixels from the image's top edge")
    confidence: float | None = Field(
        ge=0,
        le=1,
        description=f"the model's probability that the point is within {CONFIDENCE_RADIUS_PX:g} pixels of the "
        "96x96 face crop (about 5% of the eye-corner distance) of where it is",
    )


Keypoints = list[Keypoint]
KEYPOINTS_FIELD = Field(
    min_length=NUM_KEYPOINTS, max_length=NUM_KEYPOINTS, description="15 keypoints in course order, image pixels"
)


class Pose(BaseModel):
    yaw: float = Field(ge=-180, le=180, description="degrees; > 0: the subject turns to their own left (image right)")
    pitch: float = Field(ge=-180, le=180, description="degrees; > 0: the subject looks up")
    roll: float = Field(
        ge=-180, le=180, description="degrees; > 0: the head tilts toward the subject's left shoulder (clockwise)"
    )


POSE_FIELD = Field(
    description="the head's pose from the 15 keypoints (a 3D mean face fitted by solvePnP, the camera from the "
    "image's size); null where the points do not support one: fewer than 3 confident points, degenerate points, "
    "or points no turned face fits"
)


class KeypointsAnswer(BaseModel):
    keypoints: Keypoints = KEYPOINTS_FIELD
    pose: Pose | None = POSE_FIELD


class FaceBox(BaseModel):
    x: int
    y: int
    width: int
    height: int


class Face(BaseModel):
    box: FaceBox = Field(description="the detector's box (or the box given in `boxes`), photo pixels")
    score: float | None = Field(
        ge=0,
        le=1,
        description="the detector's confidence (YuNet); null for Haar, which has none; a given box's score or null",
    )
    detector: Literal[(*DETECTORS, GIVEN_DETECTOR)] = Field(
        description='the detector that found this face; "given" for a box sent in `boxes`'
    )
    keypoints: Keypoints = KEYPOINTS_FIELD
    pose: Pose | None = POSE_FIELD


class FacesAnswer(BaseModel):
    width: int = Field(description="the photo's width in pixels")
    height: int = Field(description="the photo's height in pixels")
    faces: list[Face] = Field(description="one entry per detected face; empty when there is none")


class Error(BaseModel):
    error: str = Field(description="why the request was refused, in one line")
    detail: list[dict] | None = Field(None, description="for a malformed field: pydantic's errors, one per field")


NumberDigit.model_rebuild()
LeftOut.model_rebuild()

"""The face pipeline in this process, without a server: `python -m clients.webcam --local`.

It loads the models exactly as the service does (service.runtime: the manifest's hashes checked,
the same execution provider rules) and answers as /faces does, through the same vision.faces
pipeline, so the overlay and the outputs are the same either way. onnxruntime is needed (the
`cpu` or `gpu` extra); torch is not.
"""

import numpy as np

from clients.answers import FacesAnswer
from clients.api import ServiceError


class LocalFaces:
    """find_faces on a BGR frame -> the answer /faces would give for it."""

    def __init__(self):
        from service.runtime import StartupError, load_detectors, load_models
        from service.settings import Settings, SettingsError
        from vision.manifest import ManifestError

        try:
            self.settings = Settings.from_environment()
            self.model = load_models(self.settings, ("keypoints",))["keypoints"]
            self.detector = load_detectors(self.settings)[self.settings.detector]
        except (StartupError, ManifestError, SettingsError) as e:
            raise ServiceError(f"--local: {e}") from None
        except ImportError as e:  # no onnxruntime in this environment
            raise ServiceError(f"--local needs onnxruntime ({e}); install the `cpu` extra") from None

    def __call__(self, frame: np.ndarray, boxes: list[dict] | None = None) -> FacesAnswer:
        """The answer for a frame; with `boxes` (/faces' form field, as clients.tracking plans
        them), no detection: those faces are cut and predicted. Read from the JSON the service
        would send, as clients.api reads the service's."""
        from vision.faces import find_faces
        from vision.given_boxes import GivenBoxes, given_detections

        detector = self.detector if boxes is None else GivenBoxes(given_detections(boxes))
        faces = find_faces(frame, detector, self.model.outputs)
        answer = {"width": frame.shape[1], "height": frame.shape[0], "faces": [face.as_dict() for face in faces]}
        return FacesAnswer.from_json(answer)

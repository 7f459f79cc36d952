"""vision.faces: the one pipeline, detect -> crop -> predict -> map back, on real OpenCV."""

import numpy as np
from photos import GROUP_PEOPLE, group_photo, no_face_images

from vision.faces import find_faces


def test_find_faces_maps_the_models_points_back_through_each_crop(yunet):
    """A stand-in model that answers 0 for every coordinate (crop pixel 48, the course's origin):
    each face's points must come back as that pixel of its own crop, in photo pixels."""
    photo = group_photo()
    found = find_faces(photo, yunet, lambda x: [np.zeros((len(x), 30), np.float32)])
    assert len(found) == len(GROUP_PEOPLE)
    for face in found:
        origin = face.crop.to_image(np.array([48.0, 48.0]))
        np.testing.assert_allclose(face.keypoints, np.tile(origin, (15, 1)), atol=1e-9)
        answer = face.as_dict()
        assert answer["detector"] == "yunet" and len(answer["keypoints"]) == 15
    assert find_faces(no_face_images()["grey"], yunet, lambda x: 1 / 0) == []  # no face: no model call

"""The MTFL-format fixture in tests/fixtures/mtfl5/: six faces of the committed YouTube fixture frames
(tests/fixtures/faces), each cut as MTFL's photos are (a square around its five points, about 5.6
eye-centre distances on a side, edges replicated, scaled to 192x192), with its five points from
the 68 labels (`vision.keypoints.to_five`, OpenCV's pixel centers) written as MTFL writes them:
x1..x5, y1..y5, then gender, smile, glasses, pose. No MTFL photo is copied.

The names cover each kind of MTFL name: two LFW people, two faces of one web photo, a web photo of
a yaw folder with the same number as that photo (a different photo), and one more web photo. Under
the held-out rule (`training.faces_data.mtfl_held_out`, 15%, seed 0) the photo with two faces is
held out and the other four identities are training ones.

The files are committed; `python tests/mtfl_fixture.py` writes them again.
"""

import csv

import cv2
import numpy as np
from paths import FIXTURES

from training.faces_data import MTFL_COLUMNS, load_landmarks68
from vision.keypoints import from_ibug68, to_five

FOLDER = FIXTURES / "mtfl5"
SIDE = 192
EYE_DISTANCES_PER_SIDE = 5.6  # MTFL's photos: 34 px between the eye centres (median) of 192
# MTFL name <- fixture frame, gender, smile, glasses, pose
FACES = {
    "lfw_5590_Chris_Noth_0001.jpg": ("Chris_Noth_10.jpg", 1, 2, 2, 3),
    "lfw_5590_Flavia_Pennetta_0001.jpg": ("Flavia_Pennetta_32.jpg", 2, 1, 2, 3),
    "net_7876_1_0_0.jpg": ("Barry_Alvarez_20.jpg", 1, 2, 1, 2),
    "net_7876_1_1_0.jpg": ("David_Brent_30.jpg", 1, 1, 2, 4),
    "net_7876__-20_1_0.jpg": ("Abdel_Aziz_Al-Hakim_02.jpg", 1, 2, 2, 1),
    "net_7876_40_0_0.jpg": ("Barry_Alvarez_12.jpg", 1, 2, 2, 5),
}


def mtfl_face(image: np.ndarray, points5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 192x192 photo around the five points, and the points in it (pixel centers at integers)."""
    side = EYE_DISTANCES_PER_SIDE * np.linalg.norm(points5[0] - points5[1])
    scale = SIDE / side
    cx, cy = points5.mean(axis=0)
    half = SIDE / 2 - 0.5
    matrix = np.array([[scale, 0, half - scale * cx], [0, scale, half - scale * cy]])
    photo = cv2.warpAffine(image, matrix, (SIDE, SIDE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return photo, points5 @ matrix[:, :2].T + matrix[:, 2]


def write() -> None:
    frames = load_landmarks68(FIXTURES / "faces" / "keypoints68.csv")
    (FOLDER / "images").mkdir(parents=True, exist_ok=True)
    with open(FOLDER / "points5.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MTFL_COLUMNS)
        for name, (frame, *attributes) in FACES.items():
            i = frames.names.index(frame)
            photo, points = mtfl_face(frames.read_image(i), to_five(from_ibug68(frames.points[i])))
            cv2.imwrite(str(FOLDER / "images" / name), photo, [cv2.IMWRITE_JPEG_QUALITY, 85])
            writer.writerow(
                [name, *(f"{v:.2f}" for v in points[:, 0]), *(f"{v:.2f}" for v in points[:, 1]), *attributes]
            )


if __name__ == "__main__":
    write()
    print(f"wrote {FOLDER}")

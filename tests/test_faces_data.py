import csv
import shutil

import numpy as np
import pytest

from training import faces_data, prepare_faces
from vision.errors import InputError
from vision.keypoints import KEYPOINT_NAMES


def test_landmarks68_loads_known_row(fixtures):
    data = faces_data.load_landmarks68(fixtures / "faces" / "keypoints68.csv")
    assert data.points.shape == (10, 68, 2)
    assert data.names[0] == "Abdel_Aziz_Al-Hakim_41.jpg"
    # The file says (69, 144) and (73, 159): the labels' pixel centers are at +0.5, OpenCV's at 0.
    assert data.points[0, 0].tolist() == [68.5, 143.5] and data.points[0, 1].tolist() == [72.5, 158.5]
    assert data.read_image(0).ndim == 3


def test_identity_strips_the_frame_number():
    assert faces_data.identity("Abdel_Aziz_Al-Hakim_41.jpg") == "Abdel_Aziz_Al-Hakim"
    assert faces_data.identity("dir/Chris_Noth_10.jpg") == "Chris_Noth"


def _copy_faces(fixtures, tmp_path):
    target = tmp_path / "faces"
    shutil.copytree(fixtures / "faces", target)
    return target


def test_csv_row_of_wrong_width_names_file_and_row(fixtures, tmp_path):
    faces_dir = _copy_faces(fixtures, tmp_path)
    path = faces_dir / "keypoints68.csv"
    lines = path.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:-2])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"keypoints68.csv, row 4: 135 columns"):
        faces_data.load_landmarks68(path)


def test_unreadable_image_is_named_and_nothing_is_written(fixtures, tmp_path):
    faces_dir = _copy_faces(fixtures, tmp_path)
    (faces_dir / "images" / "Chris_Noth_10.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="Chris_Noth_10.jpg: missing or unreadable image"):
        prepare_faces.main(["--faces", str(faces_dir), "--out", str(out)])
    assert not (out / "faces.npz").exists()


def _kaggle_csv(path, rows):
    columns = [f"{n}_{a}" for n in KEYPOINT_NAMES for a in "xy"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns + ["Image"])
        writer.writerows(rows)


def test_kaggle_csv_drops_rows_with_missing_keypoints(tmp_path):
    pixels = " ".join(str(i % 256) for i in range(96 * 96))
    full = [str(float(i)) for i in range(30)]
    partial = full[:-1] + [""]
    _kaggle_csv(tmp_path / "training.csv", [full + [pixels], partial + [pixels], full + [pixels]])
    images, keypoints = faces_data.load_kaggle_csv(tmp_path / "training.csv")
    assert images.shape == (2, 96, 96) and images.dtype == np.uint8
    assert images[0, 0, :3].tolist() == [0, 1, 2] and images[0, 1, 64] == 160  # row-major 96x96
    assert keypoints.shape == (2, 15, 2) and keypoints[0, 1].tolist() == [2.0, 3.0]


def test_kaggle_csv_with_short_image_names_the_row(tmp_path):
    _kaggle_csv(tmp_path / "training.csv", [[str(float(i)) for i in range(30)] + ["1 2 3"]])
    with pytest.raises(InputError, match=r"training.csv, row 2: 3 pixels"):
        faces_data.load_kaggle_csv(tmp_path / "training.csv")


def test_prepare_faces_on_fixtures(fixtures, tmp_path, capsys):
    out = tmp_path / "faces"
    prepare_faces.main(["--faces", str(fixtures / "faces"), "--out", str(out), "--validation-share", "0.4"])
    assert "youtube: 10 faces, 10 cropped from a YuNet detection" in capsys.readouterr().out
    arrays = np.load(out / "faces.npz")
    assert arrays["images"].shape == (10, 96, 96) and arrays["keypoints"].shape == (10, 15, 2)
    assert arrays["context"].shape == (10, 144, 144) and arrays["points"].shape == (10, 15, 2)
    assert set(arrays["sources"]) == {"youtube"} and arrays["detected"].all()
    assert np.abs(arrays["keypoints"]).max() <= 1.0
    val, ids = arrays["validation"], arrays["identities"]
    assert 0 < val.sum() < 10
    assert not set(ids[val]) & set(ids[~val])  # identity-disjoint
    assert (out / "contact_sheet.png").stat().st_size > 0


def test_faces_npz_loads_for_export_and_for_training(fixtures, tmp_path):
    npz = prepare_faces.save(prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, progress=False), tmp_path)
    train_images, train_points, val_images, val_points = faces_data.load_split(npz)
    assert train_images.shape[1:] == (96, 96) and train_images.dtype == np.uint8
    assert val_points.shape[1:] == (15, 2) and val_points.dtype == np.float32
    assert len(train_images) + len(val_images) == 10 and len(train_images) and len(val_images)
    split = faces_data.load_training(npz)
    np.testing.assert_array_equal(split.val_images, val_images)
    np.testing.assert_array_equal(split.train_points, train_points)
    assert split.train_context.shape == (len(train_images), 144, 144)  # the crop with a border around it
    assert len(split.train_sources) == len(train_images) and set(split.val_sources) == {"youtube"}


def test_faces_npz_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.npz: no such file"):
        faces_data.load_split(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk.npz: not a faces.npz"):
        faces_data.load_split(tmp_path / "junk.npz")
    images = np.zeros((2, 96, 96), np.uint8)
    np.savez(tmp_path / "all_val.npz", images=images, keypoints=np.zeros((2, 15, 2)), validation=np.ones(2, bool))
    with pytest.raises(InputError, match=r"no train or no validation frames"):
        faces_data.load_split(tmp_path / "all_val.npz")


def test_the_training_crops_are_the_services_crops(fixtures, tmp_path):
    """Each stored crop is exactly what vision.crop cuts for the frame's YuNet face, and its
    keypoints are the labels mapped into that crop."""
    from vision import keypoints
    from vision.colors import to_gray
    from vision.crop import FaceCrop, normalize
    from vision.detectors import YuNetDetector

    arrays = prepare_faces.prepare({"youtube": fixtures / "faces"}, progress=False)
    data = faces_data.load_landmarks68(fixtures / "faces" / "keypoints68.csv", fixtures / "faces" / "images")
    detector = YuNetDetector(prepare_faces.YUNET, score_threshold=0.5)
    for i in range(len(data.names)):
        image = data.read_image(i)
        crop = FaceCrop.around(prepare_faces.best_detection(detector, image, data.points[i]))
        np.testing.assert_array_equal(arrays["images"][i], crop.cut(to_gray(image)))
        expected = normalize(crop.to_crop(keypoints.from_ibug68(data.points[i])))
        np.testing.assert_allclose(arrays["keypoints"][i], expected, atol=1e-5)


def test_a_made_up_detection_approximates_yunets(fixtures):
    from vision.detectors import YuNetDetector
    from vision.geometry import iou

    data = faces_data.load_landmarks68(fixtures / "faces" / "keypoints68.csv")
    detector = YuNetDetector(prepare_faces.YUNET)
    found = [prepare_faces.best_detection(detector, data.read_image(i), data.points[i]) for i in range(len(data.names))]
    placement = prepare_faces.box_from_labels(found, list(data.points))
    ious = [iou(d.box, placement.detection(p).box) for d, p in zip(found, data.points)]
    assert np.median(ious) > 0.8
    rolls = [abs(d.roll - placement.detection(p).roll) for d, p in zip(found, data.points)]
    assert np.median(rolls) < 5  # degrees: the labelled eyes agree with YuNet's


# --- MTFL ------------------------------------------------------------------------------------

AS_GIVEN = {"pixel_center": 0.0}


def test_mtfl5_loads_the_files_points_in_our_names_order(fixtures):
    data = faces_data.load_mtfl5(fixtures / "mtfl5", **AS_GIVEN)
    assert len(data.names) == 6 and data.points.shape == (6, 5, 2)
    assert data.names[0] == "lfw_5590_Chris_Noth_0001.jpg"
    # x1..x5, y1..y5 = image-left eye, image-right eye, nose tip, image-left and image-right mouth corner
    assert data.points[0].tolist() == [
        [78.27, 74.99],
        [112.52, 76.66],
        [99.61, 94.04],
        [80.64, 114.59],
        [106.46, 117.22],
    ]
    assert {key: values[0] for key, values in data.attributes.items()} == {
        "gender": 1,
        "smile": 2,
        "glasses": 2,
        "pose": 3,
    }
    assert data.attributes["pose"].tolist() == [3, 3, 2, 4, 1, 5] and data.read_image(0).shape == (192, 192, 3)


def test_mtfl5_points_are_the_fixture_faces_labels(fixtures):
    """The fixture's rows are its 68-point labels mapped into each photo: the right eye centre is
    the mean of the subject's right eye points, on the image's left."""
    from mtfl_fixture import FACES, mtfl_face

    from vision.keypoints import from_ibug68, to_five

    frames = faces_data.load_landmarks68(fixtures / "faces" / "keypoints68.csv")
    data = faces_data.load_mtfl5(fixtures / "mtfl5", **AS_GIVEN)
    for name, points in zip(data.names, data.points, strict=True):
        i = frames.names.index(FACES[name][0])
        _, expected = mtfl_face(frames.read_image(i), to_five(from_ibug68(frames.points[i])))
        np.testing.assert_allclose(points, expected, atol=0.006)
        assert points[0, 0] < points[1, 0] and points[3, 0] < points[4, 0]  # the subject's right on the image's left


def test_mtfl5_moves_the_points_by_its_pixel_center(fixtures):
    given = faces_data.load_mtfl5(fixtures / "mtfl5", **AS_GIVEN).points
    np.testing.assert_allclose(faces_data.load_mtfl5(fixtures / "mtfl5").points, given - faces_data.MTFL_PIXEL_CENTER)
    np.testing.assert_allclose(faces_data.load_mtfl5(fixtures / "mtfl5", pixel_center=0.75).points, given - 0.75)


def test_mtfl_identity_is_the_person_or_the_photo():
    identity = faces_data.mtfl_identity
    assert identity("lfw_5590_Aaron_Eckhart_0001.jpg") == "lfw/Aaron_Eckhart"
    assert identity("images/lfw_5590_Lim_Dong-won_0001.jpg") == "lfw/Lim_Dong-won"
    # Faces of one web photo are one identity; a yaw folder numbers its photos anew.
    assert identity("net_7876_6244_0_0.jpg") == identity("net_7876_6244_3_0.jpg") == "web/6244"
    assert identity("net_7876__-20_1006_2.jpg") == identity("net_7876__-20_1006_0.jpg") == "web/-20/1006"
    assert (
        identity("net_7876__0_1006_0.jpg") != identity("net_7876__-20_1006_0.jpg") != identity("net_7876_1006_0_0.jpg")
    )
    # A photo that MTFL holds twice is one identity, even across LFW and the web photos.
    assert identity("lfw_5590_Carlos_Beltran_0001.jpg") == identity("lfw_5590_Raul_Ibanez_0001.jpg")
    assert identity("net_7876_7904_0_0.jpg") == "lfw/Jon_Stewart"
    assert identity("someone_else.png") == "other/someone_else"


def test_mtfl_held_out_rule_is_deterministic_and_takes_the_share():
    people = [f"web/{i}" for i in range(20000)]
    held_out = np.array([faces_data.mtfl_held_out(p) for p in people])
    assert abs(held_out.mean() - faces_data.MTFL_VALIDATION_SHARE) < 0.01
    assert held_out.tolist() == [faces_data.mtfl_held_out(p) for p in people]  # the same again
    other_seed = np.array([faces_data.mtfl_held_out(p, seed=1) for p in people])
    assert abs(other_seed.mean() - 0.15) < 0.01 and (other_seed != held_out).any()
    assert np.array([faces_data.mtfl_held_out(p, share=0.3) for p in people])[held_out].all()  # nested shares
    # Pinned, so that the split cannot move without a test noticing: the first held-out web photos.
    assert [i for i in range(40) if held_out[i]] == [1, 6, 19, 21, 22, 27, 28, 29, 37, 39]


def test_mtfl_parts_are_identity_disjoint_and_cover_the_data(fixtures):
    everyone = faces_data.load_mtfl5(fixtures / "mtfl5")
    train = faces_data.load_mtfl5(fixtures / "mtfl5", "train")
    held_out = faces_data.load_mtfl5(fixtures / "mtfl5", "held_out")
    assert held_out.names == ["net_7876_1_0_0.jpg", "net_7876_1_1_0.jpg"]  # two faces of one photo, together
    assert sorted(train.names + held_out.names) == sorted(everyone.names)
    assert not set(train.identities) & set(held_out.identities)
    assert "net_7876__-20_1_0.jpg" in train.names  # photo 1 of a yaw folder is another photo
    np.testing.assert_array_equal(held_out.points, everyone.points[[2, 3]])
    assert held_out.attributes["pose"].tolist() == [2, 4]
    with pytest.raises(ValueError, match="part"):
        faces_data.load_mtfl5(fixtures / "mtfl5", "validation")


def test_mtfl5_errors_name_the_file_and_row(fixtures, tmp_path):
    folder = tmp_path / "mtfl5"
    shutil.copytree(fixtures / "mtfl5", folder)
    path = folder / "points5.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3] + [lines[3].rsplit(",", 1)[0]] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"points5.csv, row 4: 14 columns, expected 15"):
        faces_data.load_mtfl5(folder)
    path.write_text("\n".join([lines[0].replace("x1", "X1")] + lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"points5.csv: expected the header image,x1,"):
        faces_data.load_mtfl5(folder)
    path.write_text("\n".join(lines[:2] + [lines[2].replace("77.70", "n/a")]) + "\n")
    with pytest.raises(InputError, match=r"points5.csv, row 3: a value is not a number"):
        faces_data.load_mtfl5(folder)
    with pytest.raises(InputError, match=r"image folder not found"):
        faces_data.load_mtfl5(tmp_path)


def test_mtfl5_full_data_split(shared_data):
    """The split of the real MTFL: pinned sizes, identity-disjoint, no photo on both sides."""
    if not (shared_data / "mtfl5").is_dir():
        pytest.skip(f"needs {shared_data / 'mtfl5'}")
    everyone = faces_data.load_mtfl5(shared_data / "mtfl5")
    train = faces_data.load_mtfl5(shared_data / "mtfl5", "train")
    held_out = faces_data.load_mtfl5(shared_data / "mtfl5", "held_out")
    assert (len(everyone.names), len(train.names), len(held_out.names)) == (9753, 8301, 1452)
    assert len(set(held_out.identities)) == 1391 and not set(train.identities) & set(held_out.identities)
    assert len(set(everyone.identities)) == 9260
    assert all(name in everyone.names for group in faces_data.MTFL_SAME_PHOTOS for name in group)

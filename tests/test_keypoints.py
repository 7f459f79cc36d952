import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from training import common, models, prepare_faces
from training import keypoints as kp_training
from training.faces_data import load_split
from vision import keypoints
from vision.crop import denormalize, normalize
from vision.errors import InputError
from vision.metrics import course_score, nme, nme_five_per_face, nme_per_face
from vision.signatures import CROP_SIZE


def test_flip_swaps_left_and_right_pairs():
    image = np.zeros((96, 96), np.uint8)
    image[10, 20] = 255
    points = np.zeros((15, 2))
    points[:, 1] = np.arange(15)  # y tags each point so we can follow it
    points[:, 0] = 30.0
    left_eye = keypoints.KEYPOINT_NAMES.index("left_eye_center")
    right_eye = keypoints.KEYPOINT_NAMES.index("right_eye_center")
    nose = keypoints.KEYPOINT_NAMES.index("nose_tip")
    points[left_eye, 0] = 70.0  # the subject's left eye sits on the image's right

    mirrored, flipped = kp_training.flip(image, points)

    assert mirrored[10, 95 - 20] == 255 and mirrored[10, 20] == 0
    # The right eye now holds the old left eye, mirrored: x -> 95 - x.
    assert flipped[right_eye].tolist() == [95 - 70.0, left_eye]
    assert flipped[left_eye].tolist() == [95 - 30.0, right_eye]
    assert flipped[nose].tolist() == [95 - 30.0, nose]  # the nose has no partner
    mouth_left = keypoints.KEYPOINT_NAMES.index("mouth_left_corner")
    mouth_right = keypoints.KEYPOINT_NAMES.index("mouth_right_corner")
    assert flipped[mouth_left, 1] == mouth_right and flipped[mouth_right, 1] == mouth_left
    # Flipping twice is the identity.
    again_image, again = kp_training.flip(mirrored, flipped)
    assert np.array_equal(again_image, image) and np.array_equal(again, points)


def test_augment_moves_keypoints_with_the_pixels():
    """A bright dot at each keypoint of a context crop (144x144, the 96x96 crop at its center) must
    still be under the keypoint in the augmented 96x96 crop."""
    config = kp_training.Config(rotate=15, scale=0.1, shift=0.06)
    rng = np.random.default_rng(3)
    px = np.array([[30.0, 35.0], [66.0, 35.0], [48.0, 60.0]])
    points = np.zeros((15, 2))
    for trial in range(10):
        image = np.zeros((144, 144), np.uint8)
        chosen = [0, 1, 10]  # both eye centers and the nose
        full = np.full((15, 2), 48.0)
        full[chosen] = px
        for x, y in px.astype(int) + 24:
            cv2_circle(image, x, y)
        points = normalize(full)
        x, out = kp_training.augment(image, points, config, rng)
        assert x.shape == (96, 96)
        out_px = denormalize(out)
        for i in chosen:
            cx, cy = np.round(out_px[i]).astype(int)
            assert x[cy, cx] > 0.3, f"trial {trial}: point {i} left its dot"


def cv2_circle(image, x, y):
    import cv2

    cv2.circle(image, (int(x), int(y)), 3, 255, -1)


def test_course_score_matches_the_formula_by_hand():
    target = np.zeros((2, 30))
    pred = np.zeros((2, 30))
    pred[0, 0] = 0.1  # squared error 0.01
    pred[1, 5] = -0.2  # squared error 0.04
    # MSE = 0.05 / 60 values; score = 1 / (2 * MSE) = 600
    assert course_score(pred, target) == pytest.approx(600.0)
    assert course_score(pred.reshape(2, 15, 2), target.reshape(2, 15, 2)) == pytest.approx(600.0)


def test_nme_by_hand():
    left, right = keypoints.OUTER_EYE_CORNERS
    target = np.zeros((2, 15, 2))
    target[0, left] = [0.4, 0.0]
    target[0, right] = [-0.4, 0.0]  # ocular distance 0.8
    target[1, left] = [0.2, 0.0]
    target[1, right] = [-0.2, 0.0]  # ocular distance 0.4
    pred = target.copy()
    pred[0, 0] += [0.3, 0.4]  # one point 0.5 off: mean error 0.5 / 15
    pred[1] += [0.0, 0.04]  # every point 0.04 off: mean error 0.04
    expected = ((0.5 / 15) / 0.8 + 0.04 / 0.4) / 2
    assert nme(pred, target) == pytest.approx(expected)
    assert nme(pred.reshape(2, 30), target.reshape(2, 30)) == pytest.approx(expected)


def test_nme_per_face_and_per_keypoint():
    left, right = keypoints.OUTER_EYE_CORNERS
    target = np.zeros((2, 15, 2))
    target[:, left, 0], target[:, right, 0] = 10.0, -10.0  # pixels: ocular distance 20
    pred = target.copy()
    pred[0, 3] += [6.0, 8.0]  # 10 px off at one point
    per_point = nme_per_face(pred, target, per_keypoint=True)
    assert (
        per_point.shape == (2, 15) and per_point[0, 3] == pytest.approx(0.5) and per_point.sum() == pytest.approx(0.5)
    )
    assert nme_per_face(pred, target) == pytest.approx([0.5 / 15, 0.0])
    assert nme(pred, target) == pytest.approx(0.5 / 30)


def test_nme_five_points_is_over_the_eye_centre_distance():
    target = np.zeros((2, 5, 2))
    target[:, 0, 0], target[:, 1, 0] = 10.0, 30.0  # eye centres 20 px apart
    target[1] *= 2  # a face twice the size: 40 px
    pred = target.copy()
    pred[0, 2] += [6.0, 8.0]  # 10 px off at the nose tip
    pred[1] += [0.0, 4.0]  # every point 4 px off
    per_point = nme_five_per_face(pred, target, per_keypoint=True)
    assert (
        per_point.shape == (2, 5) and per_point[0, 2] == pytest.approx(0.5) and per_point[0].sum() == pytest.approx(0.5)
    )
    np.testing.assert_allclose(nme_five_per_face(pred, target), [0.1, 0.1])


def test_the_metrics_need_no_torch():
    """Evaluation and serving code measure with vision.metrics too: importing it must not pull in torch."""
    code = (
        "import sys, numpy as np\n"
        "from vision import keypoints, metrics\n"
        "t = np.zeros((2, 15, 2)); t[:, keypoints.OUTER_EYE_CORNERS[0], 0] = 0.5\n"
        "p = t + 0.1\n"
        "assert abs(metrics.course_score(p, t) - 50.0) < 1e-9, metrics.course_score(p, t)\n"
        "assert metrics.nme(p, t) > 0\n"
        "assert 'torch' not in sys.modules, 'vision.metrics imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # One definition: the trainer uses vision's metrics, it keeps no copy of its own.
    assert kp_training.course_score is course_score and kp_training.nme is nme


@pytest.mark.parametrize("head", models.KEYPOINT_HEADS)
def test_flip_averaging_in_forward_is_mirror_consistent(head):
    torch.manual_seed(0)
    model = models.KeypointNet(widths=(8, 8, 8, 8, 8), hidden=16, flip_tta=True, head=head).eval()
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        y = model(x).points.numpy().reshape(3, 15, 2)
        y_mirror = model(torch.flip(x, dims=[3])).points.numpy().reshape(3, 15, 2)
    # Mirroring the input must mirror the averaged prediction exactly.
    back = normalize(np.stack([kp_training.flip(np.zeros((96, 96)), denormalize(p))[1] for p in y_mirror]))
    assert np.allclose(back, y, atol=1e-5)


def test_soft_argmax_puts_a_sharp_heatmap_at_its_cells_center_and_a_flat_one_in_the_middle():
    head = models.HeatmapHead((8, 8, 8, 8, 8))
    side = CROP_SIZE // 4
    logits = torch.zeros(2, 15, side * side)
    row, column = 5, 17
    logits[0, :, row * side + column] = 50.0  # all the mass in one cell
    points, seen = models.soft_argmax(logits, head.grid_x, head.grid_y)
    # Cell (row, column) covers crop pixels 4j .. 4j + 3: its center is 4j + 1.5.
    expected = normalize(np.array([[4 * column + 1.5, 4 * row + 1.5]]))
    assert np.allclose(points[0].reshape(15, 2).numpy(), expected, atol=1e-5)
    spread_x, spread_y, concentration = seen.reshape(2, 3, 15)[0]
    assert spread_x.max() < 1e-3 and spread_y.max() < 1e-3 and concentration.min() > 0.999
    # A flat heatmap: the mean of the cell centers, which the grid's symmetry puts at the middle of
    # the crop (pixel 47.5, normalized -1/96); its spread is the grid's, its concentration 1 / cells.
    assert np.allclose(points[1].numpy(), normalize(np.array([[47.5, 47.5]])).repeat(15, 0).ravel(), atol=1e-6)
    assert np.allclose(seen[1, 30:].numpy(), 1 / side**2)


def test_the_heatmap_head_has_the_fc_heads_interface():
    torch.manual_seed(0)
    fc = models.KeypointNet(widths=(8, 8, 8, 8, 8), hidden=16, flip_tta=True, confidence=True).eval()
    heatmap = models.KeypointNet(widths=(8, 8, 8, 8, 8), flip_tta=True, confidence=True, head="heatmap").eval()
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        for model in (fc, heatmap):
            points, confidence = model(x)
            assert points.shape == (2, 30) and confidence.shape == (2, 15)
            assert points.abs().max() <= 1 and confidence.min() >= 0 and confidence.max() <= 1
    with pytest.raises(InputError, match="unknown keypoint head 'fancy'"):
        models.KeypointNet(head="fancy")


# A model and batch small enough for a test run on the fixtures.
TINY_MODEL = ["--batch-size", "4", "--widths", "8", "8", "8", "8", "8", "--hidden", "16", "--no-progress"]


def test_tiny_training_run_on_fixtures(fixtures, tmp_path):
    arrays = prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, False)
    npz = prepare_faces.save(arrays, tmp_path / "data")
    out = tmp_path / "out"
    kp_training.main(
        [
            "--data",
            str(npz),
            "--out",
            str(out),
            "--epochs",
            "2",
            *TINY_MODEL,
        ]
    )
    metrics = json.loads((out / "keypoints.json").read_text())
    for key in (
        "val_score",
        "val_nme",
        "baseline_score",
        "baseline_nme",
        "params",
        "train_seconds",
        "command",
        "epochs",
    ):
        assert key in metrics
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert (out / "keypoints_curves.png").stat().st_size > 0
    assert (out / "keypoints_val_grid.png").stat().st_size > 0

    checkpoint = common.load_checkpoint(out / "keypoints.pt")
    assert checkpoint["model"] == "keypoints" and checkpoint["config"]["data"] == str(npz)
    assert checkpoint["model_args"] == {
        "widths": (8, 8, 8, 8, 8),
        "hidden": 16,
        "dropout": 0.1,
        "flip_tta": True,
        "head": "fc",
        "heatmap_width": 64,
    }
    model = models.model_from_checkpoint(checkpoint, expected="keypoints")
    assert not model.training
    _, _, val_images, val_points = load_split(npz)
    x = torch.from_numpy(val_images[:, None].astype(np.float32) / 255)
    pred = model(x).points.detach().numpy()
    assert pred.shape == (len(val_images), 30)
    assert course_score(pred, val_points) == pytest.approx(metrics["val_score"], rel=1e-4)
    # A checkpoint from before "model_args" (config only, as the shipped ones) loads the same model.
    legacy = {k: v for k, v in checkpoint.items() if k != "model_args"}
    assert torch.equal(models.model_from_checkpoint(legacy, expected="keypoints")(x).points, model(x).points)
    with pytest.raises(InputError, match="expected a digits_cnn checkpoint"):
        models.model_from_checkpoint(checkpoint, expected="digits_cnn")

    # A fine-tuning run starts from those weights: with a zero learning rate it ends where it began.
    tuned = tmp_path / "tuned"
    kp_training.main(
        [
            "--data",
            str(npz),
            "--out",
            str(tuned),
            "--epochs",
            "1",
            "--lr",
            "0",
            "--loss",
            "mse",
            *TINY_MODEL,
            "--init",
            str(out / "keypoints.pt"),
        ]
    )
    start = checkpoint["state_dict"]
    end = common.load_checkpoint(tuned / "keypoints.pt")["state_dict"]
    assert all(torch.equal(start[k], end[k]) for k in start if "running" not in k and "num_batches" not in k)

    # Another head starts from the trunk alone; a trunk of other widths is refused in one line.
    heatmap = models.KeypointNet(widths=(8, 8, 8, 8, 8), head="heatmap")
    kp_training.start_from(heatmap, str(out / "keypoints.pt"))
    trunk = {k: v for k, v in heatmap.state_dict().items() if k.startswith("features.") and "num_batches" not in k}
    assert trunk and all(torch.equal(v, start[k]) for k, v in trunk.items())
    assert heatmap.pixel_std.item() == start["pixel_std"].item()
    with pytest.raises(InputError, match="its trunk does not fit this model"):
        kp_training.start_from(models.KeypointNet(widths=(8, 8, 8, 8, 16), head="heatmap"), str(out / "keypoints.pt"))


def test_missing_data_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kp_training.main(["--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path)])
    assert str(exit_info.value).startswith("error: ") and "\n" not in str(exit_info.value)


def test_the_command_line_and_python_share_one_config():
    assert kp_training.parse_args([]) == kp_training.Config().resolved()
    config = kp_training.parse_args(["--lr", "0", "--widths", "8", "16", "--no-flip-tta", "--blur-sigma", "0.2", "0.3"])
    assert config.lr == 0.0  # zero is zero: a run that keeps its starting weights
    assert config.widths == (8, 16) and not config.flip_tta and config.blur_sigma == (0.2, 0.3)
    assert config.model_args() == {
        "widths": (8, 16),
        "hidden": 256,
        "dropout": 0.1,
        "flip_tta": False,
        "head": "fc",
        "heatmap_width": 64,
    }


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--batch-size", "0"], ["--lr", "-1"], ["--loss", "huber"]])
def test_a_bad_config_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        kp_training.parse_args(argv)
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err


def test_augmentation_strengths_are_config_fields():
    """With every strength at zero the augmentation is the identity, the context crop's 96x96
    center: no literal is left in it."""
    still = dataclasses.replace(
        kp_training.Config(),
        flip_p=0.0,
        rotate=0.0,
        scale=0.0,
        shift=0.0,
        blur_p=0.0,
        contrast=(1.0, 1.0),
        brightness=0.0,
        noise_p=0.0,
        jpeg_p=0.0,
    )
    rng = np.random.default_rng(0)
    context = rng.integers(0, 256, (144, 144), dtype=np.uint8)
    center = context[24:120, 24:120]
    points = rng.uniform(-0.8, 0.8, (15, 2)).astype(np.float32)
    for _ in range(5):
        x, out = kp_training.augment(context, points, still, rng)
        assert np.allclose(x, center / 255, atol=1e-6) and np.allclose(out, points, atol=1e-5)
    flipped = dataclasses.replace(still, flip_p=1.0)
    x, out = kp_training.augment(context, points, flipped, rng)
    assert np.allclose(x, center[:, ::-1] / 255, atol=1e-6)
    noisy = dataclasses.replace(still, noise_p=1.0, noise_sigma=(0.05, 0.05))
    x, _ = kp_training.augment(context, points, noisy, rng)
    assert 0.02 < np.std(x - center / 255) < 0.06
    compressed = dataclasses.replace(still, jpeg_p=1.0, jpeg_quality=(10, 10))
    x, _ = kp_training.augment(context, points, compressed, rng)
    assert 0 < np.abs(x - center / 255).mean() < 0.2


def test_the_shipped_keypoints_checkpoint_still_loads(request):
    path = request.config.rootpath / "models" / "keypoints.pt"
    if not path.exists():
        pytest.skip(f"no shipped {path}")
    checkpoint = common.load_checkpoint(path)  # torch.load(weights_only=True): plain data only
    assert checkpoint["model_args"]["widths"] == (24, 32, 64, 128, 256)
    model = models.model_from_checkpoint(checkpoint, expected="keypoints")
    assert not model.training and model.flip_tta and checkpoint["model_args"]["confidence"]
    points, confidence = model(torch.rand(2, 1, 96, 96))
    assert points.shape == (2, 30) and confidence.shape == (2, 15)


def test_an_epoch_shows_each_photo_as_often_as_asked_and_each_frame_once():
    from training.keypoints import epoch_order

    sources = np.array(["youtube", "helen", "youtube", "afw"])
    order = epoch_order(sources, 3, np.random.default_rng(0))
    assert sorted(np.bincount(order, minlength=4).tolist()) == [1, 1, 3, 3]
    assert np.bincount(order)[[1, 3]].tolist() == [3, 3]
    assert sorted(epoch_order(sources, 1, np.random.default_rng(0)).tolist()) == [0, 1, 2, 3]


def test_an_epoch_draws_its_mtfl_faces_afresh_and_none_twice():
    from training.keypoints import epoch_order

    sources = np.array(["youtube", "helen"] + ["mtfl"] * 10)
    rng = np.random.default_rng(0)
    first, second = (epoch_order(sources, 2, rng, mtfl_per_epoch=4) for _ in range(2))
    for order in (first, second):
        counts = np.bincount(order, minlength=len(sources))
        assert counts[:2].tolist() == [1, 2] and sorted(counts[2:].tolist()) == [0] * 6 + [1] * 4
    assert set(first[first >= 2]) != set(second[second >= 2])  # other faces each epoch
    assert len(epoch_order(sources, 1, rng, mtfl_per_epoch=50)) == 12  # all of them, once
    assert len(epoch_order(sources, 1, rng)) == 2  # none unless asked


def test_the_loss_leaves_out_the_points_a_face_has_no_label_for():
    pred = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    target = torch.tensor([[0.0, 0.0, float("nan"), float("nan")], [0.5, 0.5, 0.5, 0.5]])
    labelled = ~torch.isnan(target)
    for kind in ("mse", "l1", "wing"):
        loss = kp_training.keypoint_loss(kind, pred, target)
        assert torch.isfinite(loss)
        assert loss == pytest.approx(kp_training.keypoint_loss(kind, pred[labelled], target[labelled]).item())
    full = torch.zeros(2, 4)
    assert kp_training.keypoint_loss("mse", pred, full) == pytest.approx(
        torch.nn.functional.mse_loss(pred, full).item()
    )


def test_mtfl_faces_train_beside_the_68_point_ones(fixtures, tmp_path):
    """prepare_faces --mtfl adds MTFL's training part (five points, the others NaN, never validation);
    the trainer draws them each epoch and its loss and baseline stay finite."""
    from training.faces_data import load_mtfl5

    arrays = prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, False)
    mtfl = prepare_faces.prepare_mtfl(fixtures / "mtfl5", progress=False)
    train_part = set(load_mtfl5(fixtures / "mtfl5", "train").names)
    assert 0 < len(mtfl["names"]) <= len(train_part) and set(mtfl["names"]) <= train_part
    assert set(mtfl["sources"]) == {"mtfl"} and not mtfl["validation"].any()
    five = list(keypoints.FIVE_POINTS)
    assert np.isfinite(mtfl["keypoints"][:, five]).all() and np.isnan(np.delete(mtfl["keypoints"], five, axis=1)).all()
    assert mtfl["context"].shape[1:] == arrays["context"].shape[1:] and mtfl["images"].shape[1:] == (96, 96)
    npz = prepare_faces.save(prepare_faces.joined(arrays, mtfl), tmp_path / "data")
    out = tmp_path / "out"
    kp_training.main(["--data", str(npz), "--out", str(out), "--epochs", "1", "--mtfl-per-epoch", "3", *TINY_MODEL])
    metrics = json.loads((out / "keypoints.json").read_text())
    assert np.isfinite(metrics["history"][0]["train_loss"]) and np.isfinite(metrics["baseline_score"])
    assert metrics["train_frames"] == int((~arrays["validation"]).sum()) + len(mtfl["names"])


def test_the_confidence_layer_adds_a_confidence_per_point_and_leaves_the_points_alone():
    torch.manual_seed(0)
    plain = models.KeypointNet(widths=(8, 8, 8, 8, 8), hidden=16, flip_tta=True).eval()
    sure = models.KeypointNet(widths=(8, 8, 8, 8, 8), hidden=16, flip_tta=True, confidence=True).eval()
    missing, unexpected = sure.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("spread.") for k in missing)
    x = torch.rand(3, 1, 96, 96)
    with torch.no_grad():
        sure.spread.weight.normal_(0, 0.01)
        sure.spread.bias.fill_(0.5)  # σ about 1.6 crop pixels: confidences well inside (0, 1)
        points, confidence = sure(x)
        assert torch.equal(points, plain(x).points)
        assert confidence.shape == (3, 15) and ((confidence > 0) & (confidence < 1)).all()
        # The layer predicts log σ: a wider spread is a lower confidence of being within the radius.
        sure.spread.bias.add_(1.0)
        assert (sure(x)[1] < confidence).all()
    trained = sure.train()(x)
    assert trained.points.shape == (3, 30) and trained.confidence is None  # training sees the points only


def test_confidence_within_is_the_share_of_a_2d_gaussian_inside_the_radius():
    rng = np.random.default_rng(0)
    sigma = 1.5
    draws = np.linalg.norm(rng.normal(0, sigma, (200_000, 2)), axis=1)
    expected = np.mean(draws < 2.0)
    got = models.confidence_within(torch.tensor(np.log(sigma)), 2.0).item()
    assert got == pytest.approx(expected, abs=0.005)


def test_the_spread_fit_finds_which_points_are_harder():
    """Errors drawn with a spread that a feature sets: the fitted layer gives the noisier crops and
    the noisier point a larger σ, and folding the standardization in changes nothing."""
    from training.keypoint_confidence import fit_spread, gaussian_nll

    torch.manual_seed(0)
    inputs = torch.randn(4000, 6) * 3 + 5
    true_log_sigma = 0.3 * (inputs[:, :1] - 5) + torch.tensor([0.0, 0.8])  # point 1 is always harder
    errors = (torch.randn(4000, 2, 2) * true_log_sigma.exp()[..., None]).norm(dim=-1)
    layer, nll = fit_spread(errors, inputs, epochs=60, progress=False)
    with torch.no_grad():
        fitted = layer(inputs)
    assert torch.corrcoef(torch.stack([fitted[:, 0], true_log_sigma[:, 0]]))[0, 1] > 0.95
    assert (fitted[:, 1] - fitted[:, 0]).mean().item() == pytest.approx(0.8, abs=0.1)
    assert nll == pytest.approx(gaussian_nll(fitted, errors).item(), abs=1e-3)


def test_the_confidence_command_keeps_the_trunk_and_adds_the_layer(fixtures, tmp_path):
    from training import keypoint_confidence

    arrays = prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, False)
    npz = prepare_faces.save(arrays, tmp_path / "data")
    kp_training.main(["--data", str(npz), "--out", str(tmp_path), "--epochs", "1", *TINY_MODEL])
    trained = common.load_checkpoint(tmp_path / "keypoints.pt")
    out = tmp_path / "sure.pt"
    keypoint_confidence.main(
        ["--checkpoint", str(tmp_path / "keypoints.pt"), "--data", str(npz), "--out", str(out), "--passes", "1"]
        + ["--epochs", "3", "--no-progress"]
    )
    sure = common.load_checkpoint(out)
    assert sure["model_args"] == {**trained["model_args"], "confidence": True}
    assert all(torch.equal(trained["state_dict"][k], sure["state_dict"][k]) for k in trained["state_dict"])
    assert {k for k in sure["state_dict"] if k not in trained["state_dict"]} == {"spread.weight", "spread.bias"}
    assert sure["metrics"]["confidence_fit"]["crops"] == len(load_split(npz)[0])  # one pass over the training crops
    with pytest.raises(SystemExit, match="error: "):
        keypoint_confidence.main(["--checkpoint", str(tmp_path / "missing.pt"), "--data", str(npz), "--no-progress"])


def test_the_spread_fit_leaves_out_the_points_a_face_has_no_label_for():
    from training.keypoint_confidence import fit_spread, gaussian_nll

    torch.manual_seed(0)
    inputs = torch.randn(2000, 4)
    errors = torch.randn(2000, 2, 2).norm(dim=-1)
    labelled = errors.clone()
    errors[:1000, 1] = float("nan")  # half the faces have no label for point 1 (MTFL's)
    layer, nll = fit_spread(errors, inputs, epochs=20, progress=False)
    assert np.isfinite(nll) and torch.isfinite(layer.weight).all() and torch.isfinite(layer.bias).all()
    log_sigma = torch.zeros(2000, 2)
    assert gaussian_nll(log_sigma, errors).item() == pytest.approx(
        gaussian_nll(log_sigma[~torch.isnan(errors)], labelled[~torch.isnan(errors)]).item()
    )


def test_a_teachers_point_keeps_its_weight_when_the_crop_is_mirrored():
    """batches() moves the human and the teacher points together: a point only a teacher labels
    weighs --teacher-weight wherever the flip puts it, a human's 1."""
    config = kp_training.Config(flip_p=1.0, batch_size=1, teacher_weight=0.25).resolved()
    context = np.random.default_rng(0).integers(0, 255, (144, 144), np.uint8)
    human = np.zeros((1, keypoints.NUM_KEYPOINTS, 2), np.float32)
    left_eye = keypoints.KEYPOINT_NAMES.index("left_eye_center")
    human[0, left_eye] = np.nan
    taught = np.full_like(human, np.nan)
    taught[0, left_eye] = (0.3, -0.2)
    _, y, weight = next(kp_training.batches(context[None], human, config, np.random.default_rng(0), True, [0], taught))
    right_eye = keypoints.KEYPOINT_NAMES.index("right_eye_center")  # the mirror puts the left eye here
    weights = weight.reshape(keypoints.NUM_KEYPOINTS, 2)
    assert weights[right_eye].tolist() == [0.25, 0.25]
    assert (np.delete(weights.numpy(), right_eye, axis=0) == 1).all()
    assert torch.isfinite(y).all()


def test_the_loss_weighs_each_coordinate():
    pred, target = torch.zeros(1, 4), torch.tensor([[1.0, 1.0, 3.0, float("nan")]])
    weight = torch.tensor([[1.0, 1.0, 0.5, 1.0]])
    assert kp_training.keypoint_loss("mse", pred, target, weight).item() == pytest.approx((1 + 1 + 0.5 * 9) / 2.5)


def test_teacher_labels_train_the_celeba_faces_and_fill_mtfls_points(fixtures, tmp_path, capsys):
    """prepare_faces --celeba adds unlabelled faces; the trainer fills them (and MTFL's missing
    points) from a teacher-labels file and says how many it filled."""
    from training import teachers

    arrays = prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, False)
    celeba = prepare_faces.prepare_celeba(fixtures / "faces" / "images", progress=False)
    assert len(celeba["names"]) > 0 and np.isnan(celeba["keypoints"]).all() and not celeba["validation"].any()
    joined = prepare_faces.joined(arrays, celeba)
    npz = prepare_faces.save(joined, tmp_path / "data")
    truth = joined["keypoints"].copy()
    truth[joined["sources"] == "celeba"] = np.nanmean(arrays["keypoints"], axis=0)  # stand-in teachers' answer
    zero = np.zeros((keypoints.NUM_KEYPOINTS, 2)).tolist()
    offsets = {t: {teachers.FILL_FAMILY: zero} for t in teachers.TEACHERS}
    labels = tmp_path / "teachers.npz"
    np.savez(labels, mediapipe=truth, dlib=truth, names=joined["names"], offsets=json.dumps(offsets))
    out = tmp_path / "out"
    argv = ["--data", str(npz), "--out", str(out), "--epochs", "1", *TINY_MODEL]
    with pytest.raises(SystemExit):
        kp_training.main([*argv, "--celeba-per-epoch", "2"])
    assert "needs --teachers" in capsys.readouterr().err
    kp_training.main([*argv, "--celeba-per-epoch", "2", "--teachers", str(labels)])
    metrics = json.loads((out / "keypoints.json").read_text())
    assert metrics["teacher_labels"]["points_filled"] == len(celeba["names"]) * keypoints.NUM_KEYPOINTS
    assert np.isfinite(metrics["history"][0]["train_loss"])

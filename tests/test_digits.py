import dataclasses
import json

import numpy as np
import pytest
import torch

from training import common, digits, models
from training.common import count_params, load_checkpoint
from vision.errors import InputError


def tiny_run(fixtures, tmp_path, model: str, *extra: str):
    out = tmp_path / f"{model}.pt"
    argv = ["--model", model, "--data", str(fixtures / "mnist"), "--val-size", "10", "--epochs", "1"]
    digits.main([*argv, "--pretrain-epochs", "1", "--out", str(out), *extra])
    return out


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_one_epoch_on_fixtures_writes_a_loadable_checkpoint(fixtures, tmp_path, model):
    out = tiny_run(fixtures, tmp_path, model)
    checkpoint = load_checkpoint(out)  # weights_only=True
    assert checkpoint["model"] == f"digits_{model}"
    assert checkpoint["config"]["model"] == model and checkpoint["config"]["epochs"] == 1
    assert checkpoint["model_args"] == ({"channels": (16, 32, 64)} if model == "cnn" else {})
    net = models.model_from_checkpoint(checkpoint, expected=f"digits_{model}")
    assert not net.training
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    # The rebuilt model is the trained one, not a fresh initialization.
    for key, value in net.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][key])
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert 0 <= metrics["val_accuracy"] <= 1 and metrics["val_images"] == 10
    assert metrics["params"] == count_params(net)
    assert len(metrics["history"]) == 1 and "command" in metrics
    assert (tmp_path / f"{model}_curves.png").stat().st_size > 0


def test_runs_are_repeatable(fixtures, tmp_path):
    a = load_checkpoint(tiny_run(fixtures, tmp_path / "a", "mlp", "--labels", "20"))
    b = load_checkpoint(tiny_run(fixtures, tmp_path / "b", "mlp", "--labels", "20"))
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_missing_data_exits_with_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        digits.main(["--model", "mlp", "--data", str(tmp_path / "nothing")])
    assert str(exc.value).startswith("error: ") and "\n" not in str(exc.value)


def linear_params(sizes):
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def test_parameter_counts_follow_the_architecture():
    enc = [784, 392, 196, 98, 49, 32]
    bn = 2 * (392 + 196 + 98 + 49)  # BatchNorm1d weight+bias between layers, none at the ends
    encoder = linear_params(enc) + bn
    head = linear_params([32, 400, 400, 10]) + 2 * 2 * 400
    assert count_params(models.AutoEncoder()) == encoder + linear_params(enc[::-1]) + bn == 824_702
    assert count_params(models.MLPClassifier()) == encoder + head == 591_185
    cnn = models.DigitCNN()
    assert count_params(cnn) < 1_000_000
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None for m in convs)  # BatchNorm follows every conv
    assert any(isinstance(m, torch.nn.Dropout2d) for m in cnn.modules())


def test_output_shapes():
    x = torch.rand(4, 1, 28, 28)
    for model in (models.DigitCNN(), models.MLPClassifier()):
        assert model.eval()(x).shape == (4, 10)
    assert models.AutoEncoder().eval()(x).shape == (4, 784)
    assert models.AutoEncoder().encoder(x.flatten(1)).shape == (4, 32)


def test_mflops_count_a_linear_layer_exactly():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert digits.count_mflops(model) == pytest.approx(2 * 784 * 10 / 1e6)


def config_with(p: float) -> digits.Config:
    return digits.Config(model="mlp", rotate_p=p, blur_p=p, translate_p=p).resolved()


def test_augmentation_keeps_shape_and_dtype_and_changes_images():
    x = torch.rand(64, 1, 28, 28)
    out = digits.augment(x, config_with(1.0), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    assert out.min() >= 0 and out.max() <= 1  # bilinear warps and normalized blurs stay in range
    assert torch.equal(x, x.clone())  # the input is left untouched


def test_augmentation_is_identity_at_p_zero():
    x = torch.rand(32, 1, 28, 28)
    assert torch.equal(digits.augment(x, config_with(0.0), torch.Generator().manual_seed(0)), x)


def test_blur_alone_preserves_a_flat_image_and_shift_moves_ink():
    flat = torch.full((2, 1, 28, 28), 0.5)
    for radius in (1, 2):
        c = digits.Config(rotate_p=0, translate_p=0, blur_p=1.0, blur_radius=radius).resolved()
        assert torch.allclose(digits.augment(flat, c, torch.Generator().manual_seed(0)), flat)
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 14] = 1
    c = digits.Config(rotate_p=0, translate_p=1.0, blur_p=0, translate=0.1).resolved()
    moved = digits.augment(dot, c, torch.Generator().manual_seed(1))
    assert moved[0, 0, 14, 14] < 1


def test_balanced_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    picked = digits.balanced_subset(labels, 100, seed=3)
    assert np.bincount(labels[picked], minlength=10).tolist() == [10] * 10
    assert np.array_equal(picked, digits.balanced_subset(labels, 100, seed=3))
    assert not np.array_equal(picked, digits.balanced_subset(labels, 100, seed=4))


def test_blur_radius_sets_the_kernel():
    """A wider kernel spreads a dot further: the radius is the config's, not a literal 3x3."""
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 14] = 1
    spread = {}
    for radius in (1, 2):
        c = digits.Config(rotate_p=0, translate_p=0, blur_p=1.0, blur_sigma=(1.5, 1.5), blur_radius=radius).resolved()
        spread[radius] = digits.augment(dot, c, torch.Generator().manual_seed(0))[0, 0, 14, 16].item()
    assert spread[1] == 0 and spread[2] > 0


# --- config: one definition of every default -----------------------------------------------------


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_a_config_from_python_trains_as_the_command_line_does(fixtures, monkeypatch, model):
    """fit(Config(model=...)) resolves the per-model defaults, augmentation included, as the CLI."""
    seen = []

    def capture(net, train, val, config, generator, not_digits=None):
        seen.append(config)
        raise KeyboardInterrupt  # stop before training: the config is what is under test

    monkeypatch.setattr(digits, "train_classifier", capture)
    data = digits.load_split(digits.Config(data=str(fixtures / "mnist"), val_size=10))
    with pytest.raises(KeyboardInterrupt):
        digits.fit(digits.Config(model=model, pretrain=False), data)
    assert seen[0] == digits.parse_args(["--model", model, "--no-pretrain"])
    assert seen[0] == digits.Config(model=model, pretrain=False).resolved()
    for name, value in digits.MODEL_DEFAULTS[model].items():
        assert getattr(seen[0], name) == value
    # The CNN's milder, more frequent augmentation is its default, not a command-line override.
    assert (seen[0].rotate_deg, seen[0].rotate_p) == ((12.0, 0.5) if model == "cnn" else (30.0, 0.2))


def test_resolved_keeps_what_was_given_and_fills_the_rest():
    config = digits.Config(model="cnn", lr=0.0, epochs=3, translate=0.0).resolved()
    assert (config.lr, config.epochs, config.translate) == (0.0, 3, 0.0)  # 0 is zero, not "the default"
    assert config.batch_size == 128 and config.out == "models/digits_cnn.pt"
    assert config.resolved() == config
    assert digits.Config(ablation=True).resolved().model == "mlp"
    assert digits.Config().resolved().model == "cnn"


def test_zero_learning_rate_is_zero_and_zero_epochs_are_refused(capsys):
    assert digits.parse_args(["--lr", "0"]).lr == 0.0
    assert digits.parse_args(["--model", "mlp", "--lr", "0"]).lr == 0.0
    for argv in (
        ["--epochs", "0"],
        ["--batch-size", "0"],
        ["--labels", "0"],
        ["--lr", "-1"],
        ["--model", "cnn", "--ablation"],
    ):
        with pytest.raises(SystemExit) as exc:
            digits.parse_args(argv)
        assert exc.value.code == 2
        assert "error:" in capsys.readouterr().err
    with pytest.raises(InputError):
        digits.fit(digits.Config(epochs=0))


def test_existing_flags_keep_their_meaning():
    config = digits.parse_args(["--ablation", "--no-pretrain", "--cnn-channels", "8", "16", "32", "--labels", "300"])
    assert config.model == "mlp" and config.ablation and not config.pretrain
    assert config.cnn_channels == (8, 16, 32) and config.labels == 300
    assert digits.parse_args([]).pretrain and digits.parse_args([]).labels is None


def test_config_parser_maps_fields_to_flags():
    @dataclasses.dataclass
    class Toy:
        name_with_parts: str = common.option("a", "the name")
        on: bool = common.option(True, "switch")
        sizes: tuple[int, ...] = common.option((1, 2), "sizes")
        pair: tuple[float, float] = common.option((0.5, 1.0), "a range")
        rate: float | None = common.option(None, "rate")

    parser = common.config_parser(Toy, "toy", "", {"small": {"rate": 0.1}})
    args = parser.parse_args(["--name-with-parts", "b", "--no-on", "--sizes", "3", "4", "5", "--pair", "1", "2"])
    assert vars(args) == {"name_with_parts": "b", "on": False, "sizes": [3, 4, 5], "pair": [1.0, 2.0], "rate": None}
    assert parser.parse_args(["--rate", "0"]).rate == 0.0
    with pytest.raises(SystemExit):
        parser.parse_args(["--pair", "1"])
    text = parser.format_help()
    assert "the name (default: a)" in text and "(default: small 0.1)" in text and "(default: on)" in text


# --- the model registry and checkpoints -----------------------------------------------------------


def digits_checkpoint(model_name="digits_cnn", model_args=None, config=None):
    model_args = {"channels": (8, 16, 32)} if model_args is None else model_args
    torch.manual_seed(0)
    net = models.build(model_name, model_args)
    return {
        "model": model_name,
        "model_args": model_args,
        "config": config or {},
        "state_dict": net.state_dict(),
        "metrics": {},
    }


def test_model_from_checkpoint_refuses_a_wrong_or_unknown_model_name():
    checkpoint = digits_checkpoint()
    assert isinstance(models.model_from_checkpoint(checkpoint, expected="digits_cnn"), models.DigitCNN)
    with pytest.raises(InputError, match="expected a keypoints checkpoint") as exc:
        models.model_from_checkpoint(checkpoint, expected="keypoints")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="not a model checkpoint") as exc:
        models.model_from_checkpoint(checkpoint | {"model": "resnet"})
    assert "\n" not in str(exc.value)


def test_model_from_checkpoint_refuses_unknown_model_args():
    checkpoint = digits_checkpoint()
    with pytest.raises(InputError, match="unknown model_args .*width") as exc:
        models.model_from_checkpoint(checkpoint | {"model_args": {"channels": (8, 16, 32), "width": 3}})
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="unknown model_args"):
        models.model_from_checkpoint(digits_checkpoint("digits_mlp", {}) | {"model_args": {"channels": (8, 16, 32)}})


def test_model_from_checkpoint_loads_strictly():
    checkpoint = digits_checkpoint()
    state = dict(checkpoint["state_dict"])
    state.pop("classifier.2.bias")
    with pytest.raises(InputError, match="do not fit") as exc:
        models.model_from_checkpoint(checkpoint | {"state_dict": state})
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="do not fit"):  # the weights of (8, 16, 32), built as (16, 32, 64)
        models.model_from_checkpoint(checkpoint | {"model_args": {"channels": (16, 32, 64)}})


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_a_legacy_checkpoint_with_only_a_config_loads_to_the_same_outputs(model):
    """Checkpoints from before "model_args" (the shipped ones) carry the arguments in the config."""
    config = dataclasses.asdict(digits.Config(model=model, cnn_channels=(8, 16, 32)).resolved())
    checkpoint = digits_checkpoint(f"digits_{model}", {"channels": (8, 16, 32)} if model == "cnn" else {}, config)
    legacy = {k: v for k, v in checkpoint.items() if k != "model_args"}
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = models.model_from_checkpoint(checkpoint)(x)
        assert torch.equal(models.model_from_checkpoint(legacy)(x), expected)
    # A legacy config in the shipped form: no_pretrain and no "pretrain" field, lists from JSON.
    shipped_style = {k: v for k, v in config.items() if k != "pretrain"} | {
        "no_pretrain": False,
        "cnn_channels": [8, 16, 32],
    }
    assert torch.equal(models.model_from_checkpoint(legacy | {"config": shipped_style})(x), expected)


def test_the_shipped_digit_checkpoints_still_load(request):
    for name in ("digits_cnn", "digits_mlp"):
        path = request.config.rootpath / "models" / f"{name}.pt"
        if not path.exists():
            pytest.skip(f"no shipped {path}")
        checkpoint = load_checkpoint(path)
        net = models.model_from_checkpoint(checkpoint, expected=name)
        assert not net.training and net(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_the_not_digit_loss_is_zero_past_its_margins_and_grows_before_them():
    high = torch.full((4, 10), 0.0)
    high[:, 0] = 12.0  # log-sum-exp about 12: a digit seen
    low = torch.full((4, 10), -3.0)  # log-sum-exp about -0.7: nothing seen
    assert digits.not_digit_loss(high, low, (8.0, 2.0)).item() == 0
    assert digits.not_digit_loss(low, high, (8.0, 2.0)).item() > digits.not_digit_loss(low, low, (8.0, 2.0)).item() > 0


def test_a_fine_tune_on_not_digits_starts_from_its_checkpoint_and_records_what_it_sees(fixtures, tmp_path):
    start = tiny_run(fixtures, tmp_path / "start", "cnn")
    strokes = np.zeros((40, 28, 28), np.uint8)
    strokes[:, 12:16, 4:24] = 255  # dashes
    np.savez(tmp_path / "strokes.npz", images=strokes, kinds=np.array(["dash"] * 40))
    argv = ["--init", str(start), "--not-digits", str(tmp_path / "strokes.npz"), "--lr", "0"]
    metrics = json.loads(tiny_run(fixtures, tmp_path / "tuned", "cnn", *argv).with_suffix(".json").read_text())
    assert metrics["not_digits_train"] == 36 and metrics["not_digits_val"] == 4
    assert {"digits_seen_q005", "not_digits_seen_median"} <= set(metrics)
    # At a learning rate of zero the weights are the starting checkpoint's.
    before, after = load_checkpoint(start)["state_dict"], load_checkpoint(tmp_path / "tuned" / "cnn.pt")["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before if "running" not in k and "num_batches" not in k)


def test_a_file_that_holds_no_not_digits_exits_with_one_line(fixtures, tmp_path):
    (tmp_path / "x.npz").write_text("not numpy")
    with pytest.raises(SystemExit) as exc:
        tiny_run(fixtures, tmp_path, "cnn", "--not-digits", str(tmp_path / "x.npz"))
    assert "training.not_digits" in str(exc.value) and "\n" not in str(exc.value)

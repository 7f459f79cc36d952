import json

import numpy as np
import pytest
import torch

from training import digits
from training.common import load_checkpoint


def tiny_run(fixtures, tmp_path, model: str, *extra: str):
    out = tmp_path / f"{model}.pt"
    argv = ["--model", model, "--data", str(fixtures / "mnist"), "--val-size", "10", "--epochs", "1",
            "--pretrain-epochs", "1", "--out", str(out), *extra]  # fmt: skip
    digits.main(argv)
    return out


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_one_epoch_on_fixtures_writes_a_loadable_checkpoint(fixtures, tmp_path, model):
    out = tiny_run(fixtures, tmp_path, model)
    checkpoint = load_checkpoint(out)  # weights_only=True
    assert checkpoint["model"] == f"digits_{model}"
    assert checkpoint["config"]["model"] == model and checkpoint["config"]["epochs"] == 1
    net = digits.model_from_checkpoint(checkpoint)
    assert not net.training
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    # The rebuilt model is the trained one, not a fresh initialization.
    for key, value in net.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][key])
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert 0 <= metrics["val_accuracy"] <= 1 and metrics["val_images"] == 10
    assert metrics["params"] == digits.count_params(net)
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
    assert digits.count_params(digits.AutoEncoder()) == encoder + linear_params(enc[::-1]) + bn == 824_702
    assert digits.count_params(digits.MLPClassifier()) == encoder + head == 591_185
    cnn = digits.DigitCNN()
    assert digits.count_params(cnn) < 1_000_000
    convs = [m for m in cnn.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.bias is None for m in convs)  # BatchNorm follows every conv
    assert any(isinstance(m, torch.nn.Dropout2d) for m in cnn.modules())


def test_output_shapes():
    x = torch.rand(4, 1, 28, 28)
    for model in (digits.DigitCNN(), digits.MLPClassifier()):
        assert model.eval()(x).shape == (4, 10)
    assert digits.AutoEncoder().eval()(x).shape == (4, 784)
    assert digits.AutoEncoder().encoder(x.flatten(1)).shape == (4, 32)


def test_mflops_count_a_linear_layer_exactly():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert digits.count_mflops(model) == pytest.approx(2 * 784 * 10 / 1e6)


def config_with(p: float) -> digits.Config:
    return digits.Config(model="mlp", rotate_p=p, blur_p=p, translate_p=p)


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
    c = digits.Config(rotate_p=0, translate_p=0, blur_p=1.0)
    assert torch.allclose(digits.augment(flat, c, torch.Generator().manual_seed(0)), flat)
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 14] = 1
    c = digits.Config(rotate_p=0, translate_p=1.0, blur_p=0, translate=0.1)
    moved = digits.augment(dot, c, torch.Generator().manual_seed(1))
    assert moved[0, 0, 14, 14] < 1


def test_balanced_subset_is_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 50)
    picked = digits.balanced_subset(labels, 100, seed=3)
    assert np.bincount(labels[picked], minlength=10).tolist() == [10] * 10
    assert np.array_equal(picked, digits.balanced_subset(labels, 100, seed=3))
    assert not np.array_equal(picked, digits.balanced_subset(labels, 100, seed=4))

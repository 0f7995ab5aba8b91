"""The two-branch CroCo model: shapes, norms, stems, head sharing and parameter validation."""

import pytest
import torch

from croco_pipeline.errors import CrocoConfigError
from croco_pipeline.model.models import CrocoModel, ModelConfig, build_model, count_parameters


@pytest.mark.parametrize("stem", ["cifar", "imagenet", "fast"])
def test_embeddings_have_shape_and_unit_norm(stem: str) -> None:
    model = build_model(ModelConfig(stem=stem, n_elevation_channels=2, embedding_dim=16))
    z_rgb, z_elev = model(torch.rand(3, 3, 32, 32), torch.rand(3, 2, 32, 32))
    assert z_rgb.shape == (3, 16) and z_elev.shape == (3, 16)
    torch.testing.assert_close(z_rgb.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(z_elev.norm(dim=1), torch.ones(3))
    model.eval()
    torch.testing.assert_close(model.embed_rgb(torch.rand(1, 3, 32, 32)).norm(), torch.tensor(1.0))


def test_stems() -> None:
    conv = {
        s: build_model(ModelConfig(stem=s)).rgb_encoder.conv1 for s in ("cifar", "imagenet", "fast")
    }
    assert (conv["cifar"].kernel_size, conv["cifar"].stride) == ((3, 3), (1, 1))
    assert (conv["fast"].kernel_size, conv["fast"].stride) == ((3, 3), (2, 2))
    assert (conv["imagenet"].kernel_size, conv["imagenet"].stride) == ((7, 7), (2, 2))
    assert isinstance(build_model(ModelConfig(stem="fast")).rgb_encoder.maxpool, torch.nn.Identity)
    assert isinstance(
        build_model(ModelConfig(stem="imagenet")).rgb_encoder.maxpool, torch.nn.MaxPool2d
    )


def test_shared_head_has_one_head_fewer() -> None:
    shared = build_model(ModelConfig(shared_head=True))
    separate = build_model(ModelConfig(shared_head=False))
    head = 512 * 512 + 512 + 2 * 512 + 512 * 128
    assert count_parameters(separate) - count_parameters(shared) == head
    assert shared.rgb_head is shared.elevation_head
    assert separate.rgb_head is not separate.elevation_head


def test_width_scales_every_stage() -> None:
    """width 64 is torchvision's ResNet18 exactly; width 32 halves every stage (about 1/4 weights)."""
    from torchvision.models import resnet18

    full = build_model(ModelConfig(width=64, stem="imagenet", n_elevation_channels=3))
    reference = resnet18(weights=None)
    assert count_parameters(full.rgb_encoder) == count_parameters(reference) - (512 * 1000 + 1000)
    narrow = build_model(
        ModelConfig(width=32, stem="fast", n_elevation_channels=1, embedding_dim=8)
    )
    enc = narrow.rgb_encoder
    widths = [enc.conv1.out_channels] + [
        getattr(enc, f"layer{i}")[1].conv2.out_channels for i in (1, 2, 3, 4)
    ]
    assert widths == [32, 32, 64, 128, 256]
    assert narrow.rgb_head[0].in_features == 256
    assert enc(torch.rand(2, 3, 16, 16)).shape == (2, 256)
    ratio = count_parameters(narrow.rgb_encoder) / count_parameters(full.rgb_encoder)
    assert 0.24 < ratio < 0.26
    z_rgb, z_elev = narrow(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16))
    assert z_rgb.shape == z_elev.shape == (2, 8)
    # initialised as torchvision initialises ResNet convolutions (kaiming normal, fan_out)
    conv = enc.layer3[0].conv1.weight
    expected = (2.0 / (conv.shape[0] * 9)) ** 0.5
    assert abs(float(conv.detach().std()) - expected) < 0.1 * expected


def test_encoders_are_not_weight_shared() -> None:
    model = CrocoModel(ModelConfig(n_elevation_channels=3))
    rgb_ids = {id(p) for p in model.rgb_encoder.parameters()}
    assert rgb_ids.isdisjoint(id(p) for p in model.elevation_encoder.parameters())
    assert model.elevation_encoder.conv1.in_channels == 3
    assert not torch.equal(model.rgb_encoder.conv1.weight, model.elevation_encoder.conv1.weight)


def test_from_params() -> None:
    config = ModelConfig.from_params(
        {"stem": "fast", "shared_head": False, "n_elevation_channels": 1}
    )
    assert config == ModelConfig(stem="fast", shared_head=False, n_elevation_channels=1)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"stem": "vgg"}, "train.model.stem"),
        ({"shared_head": "yes"}, "train.model.shared_head"),
        ({"embedding_dim": 0}, "train.model.embedding_dim"),
        ({"width": 0}, "train.model.width"),
        ({"n_elevation_channels": 2.5}, "train.model.n_elevation_channels"),
        ({"depth": 50}, "train.model.depth"),
    ],
)
def test_bad_params_name_the_key(params: dict, key: str) -> None:
    with pytest.raises(CrocoConfigError, match=key):
        ModelConfig.from_params(params)

import pytest
import torch

from ssseg.errors import ConfigError
from ssseg.models import ConfidenceNet, Segmenter, count_macs, count_parameters, create_model


@pytest.mark.parametrize("num_classes", [19, 11])
def test_segmenter_parameter_count_is_the_papers(num_classes):
    n = count_parameters(create_model("dsnet-fast-ss", num_classes=num_classes))
    assert 2.0e6 <= n <= 2.3e6, n


@pytest.mark.parametrize("hw", [(64, 64), (96, 128), (360, 480), (72, 200), (40, 56)])
def test_segmenter_keeps_any_multiple_of_8(hw):
    m = Segmenter(num_classes=5).eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, *hw))
    assert y.shape == (2, 5, *hw)


def test_segmenter_padding_does_not_leak_into_the_crop():
    # The output for a 360x480 image equals the top-left crop of running on its padded 384x480 copy.
    m = Segmenter(num_classes=4).eval()
    x = torch.randn(1, 3, 360, 480)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 24))
    with torch.no_grad():
        assert torch.allclose(m(x), m(padded)[..., :360, :], atol=1e-5)


def test_segmenter_has_the_described_decoder():
    m = Segmenter(num_classes=19)
    assert [d[0].out_channels for d in m.decoder] == [24, 32, 16, 24]
    assert m.classifier.stride == (4, 4) and m.classifier.in_channels == 96
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert len(convs) == len(bns)  # BN (+ReLU) after every conv


def test_confidence_net_is_table_1():
    net = ConfidenceNet(num_classes=19)
    convs = [m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride[0], c.kernel_size[0]) for c in convs] == [
        (32, 2, 3), (64, 1, 3), (128, 2, 3), (256, 1, 3), (256, 1, 3)]
    assert [b[0].dilation[0] for b in net.aspp.branches] == [1, 2, 4, 8, 16]
    assert net.aspp.out_channels == 160
    assert net.head.kernel_size == (8, 8) and net.head.stride == (4, 4) and net.head.out_channels == 1
    probs = torch.softmax(torch.randn(2, 19, 64, 96), 1)
    with torch.no_grad():
        a = net.eval().confidence(probs)
    assert a.shape == (2, 1, 64, 96) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert 1.0e6 < count_parameters(net) < 2.0e6


def test_confidence_net_with_rgb_takes_c_plus_3_channels():
    net = ConfidenceNet(num_classes=11, with_rgb=True).eval()
    assert net.features[0][0].in_channels == 14
    with torch.no_grad():
        assert net(torch.rand(1, 11, 360, 480), torch.randn(1, 3, 360, 480)).shape == (1, 1, 360, 480)
    with pytest.raises(ValueError):
        net(torch.rand(1, 11, 32, 32))


def test_macs_counted_on_meta_device_match_a_real_pass():
    m = Segmenter(num_classes=19)
    real = count_macs(m, torch.zeros(1, 3, 64, 128))
    with torch.device("meta"):
        meta = count_macs(Segmenter(num_classes=19), torch.zeros(1, 3, 64, 128))
    assert real == meta > 0


def test_factory_rejects_unknown_names():
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("resnet-9000", num_classes=3)

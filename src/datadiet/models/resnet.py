"""ResNet-18 for 32×32 images (CIFAR): torchvision's network with a 3×3 stride-1 stem and no max-pool."""

from __future__ import annotations

from typing import Sequence

from torch import nn


def resnet18(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """torchvision's ``resnet18`` adapted to small images, as in the data-pruning papers' CIFAR runs.

    The ImageNet stem (7×7 stride-2 convolution, then a stride-2 max-pool) would shrink a 32×32 image
    to 8×8 before the first block; a 3×3 stride-1 convolution and no max-pool keep it at 32×32.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of output logits.
    """
    from torchvision.models import resnet18 as torchvision_resnet18

    if len(input_shape) != 3:
        raise ValueError(
            f"`resnet18` needs image inputs (channels, height, width), got input_shape={tuple(input_shape)}"
        )
    net = torchvision_resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net

"""PresentationBuffer: batches copied in come out as one batch, unchanged, whatever the limits."""

import pytest
import torch

from datadiet.callbacks.presentation_buffer import PresentationBuffer


def batches(sizes, num_classes=4, labels=True, seed=0):
    generator = torch.Generator().manual_seed(seed)
    start = 0
    for size in sizes:
        index = torch.arange(start, start + size) * 3  # original indices, not positions
        logits = torch.randn(size, num_classes, generator=generator)
        target = torch.randint(0, num_classes, (size,), generator=generator) if labels else None
        yield index, logits, target
        start += size


def drain_all(buffer, stream):
    """What a caller following the `fits` / `take` protocol hands to the scores, batch by batch."""
    taken = []

    def take():  # the views are valid until the next add: keep copies
        taken.append([t if t is None else t.clone() for t in buffer.take()])

    for index, logits, target in stream:
        if not buffer.fits(len(index), logits.shape[1]):
            take()
        buffer.add(index, logits, target)
    if len(buffer):
        take()
    return taken


@pytest.mark.parametrize("labels", [True, False])
def test_taken_batches_are_the_concatenation(labels):
    sizes = [5, 5, 5, 3]
    buffer = PresentationBuffer(max_examples=10)
    taken = drain_all(buffer, batches(sizes, labels=labels))
    assert [len(index) for index, _, _ in taken] == [10, 8]  # 5 + 5 fill it; 5 + 3 after the take
    expected = list(batches(sizes, labels=labels))
    assert torch.equal(torch.cat([t[0] for t in taken]), torch.cat([e[0] for e in expected]))
    assert torch.equal(torch.cat([t[1] for t in taken]), torch.cat([e[1] for e in expected]))
    if labels:
        assert torch.equal(torch.cat([t[2] for t in taken]), torch.cat([e[2] for e in expected]))
    else:
        assert all(t[2] is None for t in taken)
    assert len(buffer) == 0


def test_many_classes_bound_the_examples_held():
    buffer = PresentationBuffer(max_examples=1000, max_elements=40)
    buffer.add(*next(batches([3], num_classes=10)))
    assert buffer.fits(1, 10) and not buffer.fits(2, 10)  # 40 logits / 10 classes = 4 examples
    buffer.take()
    big = next(batches([7], num_classes=10))
    assert buffer.fits(7, 10)  # an empty buffer takes any batch
    buffer.add(*big)
    assert torch.equal(buffer.take()[1], big[1])


def test_held_logits_detached_and_taken_as_float32():
    buffer = PresentationBuffer()
    weight = torch.tensor([1.5, -2.0], requires_grad=True)
    buffer.add(torch.tensor([4]), (weight * 1).to(torch.bfloat16).unsqueeze(0), torch.tensor([1]))
    _, stored, _ = buffer.take()
    assert stored.dtype == torch.float32 and not stored.requires_grad and stored.tolist() == [[1.5, -2.0]]


def test_mismatched_or_empty_fail_clearly():
    buffer = PresentationBuffer(max_examples=4)
    buffer.add(*next(batches([3])))
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        buffer.add(torch.arange(2), torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        buffer.add(torch.arange(2), torch.zeros(2, 4), None)
    with pytest.raises(RuntimeError, match="full"):
        buffer.add(*next(batches([3])))  # 3 + 3 > 4: the caller should have asked `fits`
    buffer.take()
    with pytest.raises(RuntimeError, match="nothing held"):
        buffer.take()
    with pytest.raises(ValueError, match="max_examples"):
        PresentationBuffer(max_examples=0)

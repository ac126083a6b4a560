"""Exact, fast rankings for the built-in strategies: the same kept sets as a lexsort, at numpy speed.

Every built-in strategy ranks examples easy → hard by ``(score, tie-breaker, index)``, where the tie-breaker
of the example at position ``i`` is draw ``i`` of ``rng.random(n)`` (NaN scores rank as +inf). Written
plainly that is ``np.lexsort((rng.random(n), scores))``: two stable argsorts of ``n`` float64 values, seconds
at 10 M examples. The functions here give the same answer without a full sort where none is needed (keeping
the ``k`` hardest is a partition plus a tie-break among the examples equal to the threshold), and with one
value sort where one is needed (a stable argsort of float32 scores is a sort of ``score bits << 32 | index``,
which numpy does with SIMD). Tie-breakers are drawn only where they decide something, from the same stream
(PCG64 can jump over the rest), so the generator ends where the lexsort would have left it.
"""

from __future__ import annotations

import numpy as np

#: Below this many examples the plain lexsort is as fast (and the reference everything here must equal).
SMALL = 2048
#: Draws of the tie-breaker stream generated at a time.
_CHUNK = 1 << 20


def nan_as_inf(scores: np.ndarray) -> np.ndarray:
    """``scores`` as float64 with NaN replaced by +inf (a copy only when needed)."""
    values = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(values)
    if nan.any():
        values = np.where(nan, np.inf, values)
    return values


def skip_draws(rng: np.random.Generator, count: int) -> None:
    """Moves ``rng`` on by ``count`` float64 draws (a jump for PCG64, else draws that are thrown away)."""
    bit_generator = rng.bit_generator
    if isinstance(bit_generator, (np.random.PCG64, np.random.PCG64DXSM)):
        # one 64-bit output per `random()` double; a jump drops the buffered half of a 32-bit draw
        # (`choice` uses them), which the doubles would have left for the next 32-bit draw
        buffered = bit_generator.state
        bit_generator.advance(count)
        if buffered["has_uint32"]:
            state = bit_generator.state
            state["has_uint32"], state["uinteger"] = buffered["has_uint32"], buffered["uinteger"]
            bit_generator.state = state
        return
    for start in range(0, count, _CHUNK):
        rng.random(min(_CHUNK, count - start))


def draws_at(
    rng: np.random.Generator,
    positions: np.ndarray,
    total: int,
    out: np.ndarray | None = None,
    slots: np.ndarray | None = None,
) -> np.ndarray:
    """``rng.random(total)[positions]`` for ascending ``positions``, without holding ``total`` draws.

    The draw at ``positions[i]`` goes to ``out[i]``, or to ``out[slots[i]]`` when ``slots`` are given.
    ``rng`` ends as if it had drawn all ``total`` values.
    """
    out = np.empty(len(positions)) if out is None else out
    if positions.dtype.kind != "i" or total > np.iinfo(positions.dtype).max:
        positions = positions.astype(np.int64)
    bound = positions.dtype.type  # searching a Python int would cast every position to int64 first
    filled = 0
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        end = int(np.searchsorted(positions, bound(stop)))
        if end == filled:
            skip_draws(rng, stop - start)
            continue
        draws = rng.random(stop - start)[positions[filled:end] - start]
        out[slice(filled, end) if slots is None else slots[filled:end]] = draws
        filled = end
    return out


def _extreme_positions(values: np.ndarray, count: int, largest: bool) -> np.ndarray:
    """Positions of the ``count`` largest (or smallest) ``values``, equal values ranked by position.

    Ascending order by (value, position): the largest are the last ``count``, the smallest the first.
    """
    size = len(values)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    if count >= size:
        return np.arange(size)
    kth = size - count if largest else count - 1
    threshold = np.partition(values, kth)[kth]
    strict = np.flatnonzero(values > threshold if largest else values < threshold)
    equal = np.flatnonzero(values == threshold)
    missing = count - len(strict)
    return np.concatenate([strict, equal[len(equal) - missing :] if largest else equal[:missing]])


def keep_extreme(scores: np.ndarray, num_keep: int, rng: np.random.Generator, hardest: bool) -> np.ndarray:
    """The sorted positions of the ``num_keep`` hardest (or easiest) examples, ties at random.

    Exactly ``lexsort((rng.random(n), scores))[n - num_keep:]`` (``[:num_keep]`` for the easiest), sorted,
    with NaN ranking as +inf; ``rng`` is left where that lexsort leaves it. Peak memory: one float64 copy of
    the scores (the partition), one boolean mask, the output.
    """
    size = len(scores)
    if size <= SMALL:
        order = np.lexsort((rng.random(size), nan_as_inf(scores)))
        return np.sort(order[size - num_keep :] if hardest else order[:num_keep])
    if num_keep <= 0 or num_keep >= size:
        skip_draws(rng, size)
        return np.arange(size) if num_keep >= size else np.zeros(0, dtype=np.int64)
    work = np.array(scores, dtype=np.float64)
    np.copyto(work, np.inf, where=np.isnan(work))
    kth = size - num_keep if hardest else num_keep - 1
    work.partition(kth)
    threshold = work[kth]
    del work
    keep = np.greater(scores, threshold) if hardest else np.less(scores, threshold)
    tied = np.equal(scores, threshold)
    nan = np.isnan(scores)
    if threshold == np.inf:
        tied |= nan
    elif hardest:
        keep |= nan
    del nan
    tied_positions = np.flatnonzero(tied)
    del tied
    missing = num_keep - int(np.count_nonzero(keep))
    if missing < len(tied_positions):
        breakers = draws_at(rng, tied_positions, size)
        tied_positions = tied_positions[_extreme_positions(breakers, missing, largest=hardest)]
    else:
        skip_draws(rng, size)
    keep[tied_positions] = True
    return np.flatnonzero(keep)


def _float32_exact(scores: np.ndarray) -> np.ndarray | None:
    """The scores as float32 (NaN as +inf, -0 as +0) when that loses nothing, else ``None``."""
    if scores.dtype in (np.float32, np.float16):
        narrow = scores.astype(np.float32)
    elif scores.dtype == np.float64:
        narrow = scores.astype(np.float32)
        same = (narrow == scores) | np.isnan(scores)  # +-inf convert exactly, overflow does not
        if not same.all():
            return None
    else:
        return None
    np.copyto(narrow, np.float32(np.inf), where=np.isnan(narrow))
    narrow += np.float32(0.0)  # -0.0 + 0.0 = +0.0: the two zeros compare equal and must sort as one value
    return narrow


def stable_order(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``argsort(scores, kind="stable")`` with NaN as +inf, and which sorted neighbours are equal.

    Returns ``(order, equal_next)``: ``equal_next[p]`` says the values at sorted positions ``p`` and ``p + 1``
    are equal. Float32 scores (or float64 ones that are float32 values) of fewer than 2**32 examples are
    sorted as one uint64 per example, the score's order-preserving bits above the index.
    """
    size = len(scores)
    narrow = _float32_exact(scores) if size < 2**32 else None
    if narrow is None:
        values = nan_as_inf(scores) + 0.0  # -0.0 -> +0.0, as a comparison sees them
        order = np.argsort(values, kind="stable")
        equal_next = np.empty(max(size - 1, 0), dtype=bool)
        for start in range(0, size - 1, _CHUNK):
            stop = min(start + _CHUNK, size - 1)
            sorted_values = values[order[start : stop + 1]]
            np.equal(sorted_values[:-1], sorted_values[1:], out=equal_next[start:stop])
        return order, equal_next
    bits = narrow.view(np.uint32)
    flip = bits >> np.uint32(31)  # negative floats: all bits flipped; others: the sign bit set
    flip *= np.uint32(0x7FFFFFFF)
    flip |= np.uint32(0x80000000)
    bits ^= flip
    del flip
    keys = bits.astype(np.uint64)
    del narrow, bits
    keys <<= np.uint64(32)
    for start in range(0, size, _CHUNK):
        stop = min(start + _CHUNK, size)
        keys[start:stop] |= np.arange(start, stop, dtype=np.uint64)
    keys.sort()
    low, high = (keys.view(np.uint32)[0::2], keys.view(np.uint32)[1::2])
    if not np.little_endian:
        low, high = high, low
    equal_next = np.equal(high[:-1], high[1:])
    return low.astype(_index_dtype(size)), equal_next


def _index_dtype(size: int) -> type:
    """int32 for positions below 2**31 (half the memory of numpy's int64 indices), else int64."""
    return np.int32 if size < 2**31 else np.int64


def _argsort_indices(values: np.ndarray) -> np.ndarray:
    """``argsort(values, kind="stable")`` for non-negative integers below 2**32 (one packed value sort)."""
    size = len(values)
    if size >= 2**32 or (size and int(values.max()) >= 2**32):
        return np.argsort(values, kind="stable")
    keys = np.empty(size, dtype=np.uint64)
    keys[:] = values
    keys <<= np.uint64(32)
    for start in range(0, size, _CHUNK):
        keys[start : start + _CHUNK] |= np.arange(start, min(start + _CHUNK, size), dtype=np.uint64)
    keys.sort()
    return (keys.view(np.uint32)[0::2] if np.little_endian else keys.view(np.uint32)[1::2]).astype(_index_dtype(size))


def rank_easy_to_hard(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions from easiest to hardest, ties broken at random: ``lexsort((rng.random(n), scores))``, exactly.

    One stable sort by score; then only the runs of equal scores are reordered by their tie-breakers.
    Returns int32 positions below 2**31 examples (int64 beyond).
    """
    size = len(scores)
    if size <= SMALL:
        return np.lexsort((rng.random(size), nan_as_inf(scores)))
    order, equal_next = stable_order(scores)
    # sorted position p is in a run of equal scores if it equals its predecessor or its successor
    in_run = np.zeros(size, dtype=bool)
    in_run[:-1] = equal_next
    in_run[1:] |= equal_next
    tied = np.flatnonzero(in_run).astype(_index_dtype(size))
    del in_run
    if not len(tied):
        skip_draws(rng, size)
        return order
    run_start = np.ones(len(tied), dtype=bool)  # a tied position whose predecessor is not equal to it
    run_start[1:] = ~equal_next[tied[1:] - 1]
    del equal_next
    members = order[tied]
    by_index = _argsort_indices(members)
    breakers = draws_at(rng, members[by_index], size, out=np.empty(len(members)), slots=by_index)
    del by_index
    _order_runs(members, breakers, np.flatnonzero(run_start).astype(tied.dtype))
    order[tied] = members
    return order


def _order_runs(members: np.ndarray, breakers: np.ndarray, starts: np.ndarray) -> None:
    """Reorders ``members`` inside each run (``starts``: where runs begin) by breaker, position second.

    The runs of one length are the rows of one matrix, sorted together, a bounded number of rows at a time.
    """
    lengths = np.diff(np.append(starts, len(members)))
    for length in np.unique(lengths).tolist():
        rows = starts[lengths == length]
        step = max(1, (_CHUNK // 4) // length)
        for first in range(0, len(rows), step):
            grid = rows[first : first + step, None] + np.arange(length)
            within = np.argsort(breakers[grid], axis=1, kind="stable")
            members[grid] = members[np.take_along_axis(grid, within, axis=1)]


#: Classes are ranked together in blocks of at most this many examples (bounded memory, vectorised over
#: classes), and at least 1/64 of the examples (few Python steps).
BLOCK = 1 << 20
_MIN_BLOCK = 1 << 14


def keep_extreme_per_class(
    scores: np.ndarray,
    grouping: np.ndarray,
    bounds: np.ndarray,
    num_keep: np.ndarray,
    rng: np.random.Generator,
    hardest: bool,
) -> np.ndarray:
    """:func:`keep_extreme` of every class, the classes drawing one after the other from ``rng``: a boolean
    mask of the kept positions.

    Class ``c`` holds the positions ``grouping[bounds[c]:bounds[c + 1]]`` and keeps ``num_keep[c]``. A class
    of at least a block's examples is a :func:`keep_extreme` of its own; smaller ones are ranked a block
    at a time: one :func:`rank_easy_to_hard` of the block's scores (the tie-breaker of block position ``p`` is
    draw ``p``, as it is for the classes' calls one after the other), then one stable sort by class, after
    which each class keeps the end (or the start) of its stretch. No step loops over the classes.
    """
    chosen = np.zeros(len(scores), dtype=bool)
    sizes = np.diff(bounds)
    block = min(BLOCK, max(_MIN_BLOCK, len(scores) // 64))
    first = 0
    while first < len(sizes):
        start = int(bounds[first])
        if sizes[first] >= block:
            members = grouping[start : bounds[first + 1]]
            chosen[members[keep_extreme(scores[members], int(num_keep[first]), rng, hardest)]] = True
            first += 1
            continue
        last = max(first + 1, int(np.searchsorted(bounds, start + block, side="right")) - 1)
        members = grouping[start : bounds[last]]
        order = rank_easy_to_hard(scores[members], rng)
        block_sizes, block_keep = sizes[first:last], num_keep[first:last]
        keys = np.repeat(np.arange(last - first, dtype=np.uint64), block_sizes)[order] << np.uint64(32)
        keys |= np.arange(len(order), dtype=np.uint64)
        keys.sort()  # stable by class: inside a class the easy → hard order stays
        order = order[(keys & np.uint64(0xFFFFFFFF)).astype(np.int64)]
        dropped = block_sizes - block_keep
        lengths = np.stack([dropped, block_keep] if hardest else [block_keep, dropped], axis=1).ravel()
        kept = np.repeat(np.tile(np.array([not hardest, hardest]), last - first), lengths)
        chosen[members[order[kept]]] = True
        first = last
    return chosen

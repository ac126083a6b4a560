"""Every example in the docs runs: the README's and each docs page's ```python blocks, and the public API's
``Example::`` blocks.

A page's blocks run in order in one namespace, in a temporary working directory (as a reader pasting them one
after the other into one session would); a ```python block right after a line `<!-- notest -->` is shown, not
run. A docstring's
``Example::`` block (the indented block after it) runs in a namespace prepared by :func:`_docstring_namespace`:
tiny built-in data under the names the examples use (``train_set``, ``model``, ``dm``, ...). The modules whose
docstrings are run are the ones the API reference documents (the ``::: module`` lines of ``docs/api.md``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import linecache
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`\n]*)$")


#: The line just before a ```python fence that shows its block without running it (an HTML comment: the site and
#: GitHub render nothing of it, where an info string after ``python`` would break the site's fences).
NOTEST = "<!-- notest -->"


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(first line number, source, runs)`` of every ```python block of a Markdown text, in order."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        shown_only = index > 0 and lines[index - 1].strip() == NOTEST
        info = opening["info"].split()
        body, start = [], index + 1
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1
        if info and info[0] == "python":
            source = textwrap.dedent("\n".join(line[len(opening["indent"]) :] for line in body))
            blocks.append((start + 1, source, not shown_only))
    return blocks


def run_source(source: str, filename: str, namespace: dict) -> None:
    """``exec`` with the source registered in ``linecache``, so that a failure's traceback shows its lines; a
    doctest-style block (``>>>`` prompts) runs as a doctest, its printed values checked."""
    if source.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(source, namespace, filename, filename, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, clear_globs=False)
        assert runner.failures == 0, f"{filename}: {runner.failures} doctest example(s) failed (printed above)"
        return
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102


def run_blocks(label: str, blocks: list[tuple[int, str, bool]], namespace: dict) -> None:
    for line, source, runs in blocks:
        if runs:
            run_source(source, f"<{label}, block at line {line}>", namespace)


def test_collector_reads_fences():
    text = (
        "a\n```python\nx = 1\n```\n```bash\nls\n```\n<!-- notest -->\n```python\nboom()\n```\n"
        "  ```python\n  y = 2\n  ```\n"
    )
    assert python_blocks(text) == [(3, "x = 1", True), (10, "boom()", False), (13, "y = 2", True)]


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))
    run_blocks(str(page.relative_to(ROOT)), python_blocks(page.read_text()), {"__name__": "__docs__"})


def test_a_failing_readme_block_fails(tmp_path, monkeypatch):
    """What makes the README test fail: a block that raises (checked on a copy, not the README itself)."""
    page = tmp_path / "README.md"
    page.write_text(ROOT.joinpath("README.md").read_text() + "\n```python\nraise RuntimeError('stale example')\n```\n")
    blocks = python_blocks(page.read_text())
    with pytest.raises(RuntimeError, match="stale example"):
        run_blocks("README.md", blocks[-1:], {})


# docstrings --------------------------------------------------------------------------------------------------
def documented_modules() -> list[str]:
    """The modules and objects the API reference renders (``::: name`` lines of docs/api.md)."""
    return re.findall(r"^::: *([\w.]+)", (ROOT / "docs" / "api.md").read_text(), flags=re.MULTILINE)


def _resolve(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(name)


def _members(obj):
    """The object, and what it defines itself (not what it imports or inherits): classes, functions, methods."""
    yield obj
    if inspect.ismodule(obj):
        names = getattr(obj, "__all__", None) or [n for n in vars(obj) if not n.startswith("_")]
        for name in names:
            member = getattr(obj, name)
            if (inspect.isclass(member) or inspect.isfunction(member)) and member.__module__.startswith("datadiet"):
                yield from _members(member)
    elif inspect.isclass(obj):
        for name, member in vars(obj).items():
            if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                yield member


def docstring_examples() -> dict[str, str]:
    """``{qualified name: source}`` of every ``Example::`` block of the documented API."""
    found: dict[str, str] = {}
    for name in documented_modules():
        for member in _members(_resolve(name)):
            doc = inspect.cleandoc(getattr(member, "__doc__", None) or "")  # its own, not an inherited one
            match = re.search(r"Example::\n\n((?:(?: {4}.*)?\n)+)", doc + "\n")
            if match:
                owner = getattr(member, "__module__", None) or getattr(getattr(member, "fget", None), "__module__", "")
                qualname = getattr(member, "__qualname__", None) or member.fget.__qualname__
                found[f"{owner}.{qualname}"] = textwrap.dedent(match[1])
    return found


EXAMPLES = docstring_examples()


def _docstring_namespace() -> dict:
    """Tiny built-in data under the names the docstrings use: a few seconds for every example."""
    import lightning.pytorch as L
    import numpy as np
    import torch
    from lightning.pytorch import Trainer

    import datadiet
    from datadiet.data.sources import synthetic_datamodule
    from datadiet.models import MLP, Classifier

    data = synthetic_datamodule(num_samples=400, num_features=40, num_classes=4, batch_size=32)  # MNIST-1D's shape

    def LitModel():
        return Classifier(MLP, input_shape=(40,), num_classes=4)

    namespace = {name: getattr(datadiet, name) for name in datadiet.__all__}
    namespace.update(
        L=L,
        Trainer=Trainer,
        np=np,
        torch=torch,
        LitModel=LitModel,
        model=LitModel(),
        probe_model=LitModel(),
        train_set=data.train_dataset,
        val_set=data.val_dataset,
        test_set=data.test_dataset,
        x=torch.randn(8, 40),
    )
    return namespace


def test_the_api_has_examples():
    assert len(EXAMPLES) >= 8, sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the example may use its own module's names (a function's siblings), beside the tiny data
    owner_module = next(m for m in (name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)) if _is_module(m))
    namespace = _docstring_namespace()
    namespace.update({k: v for k, v in vars(importlib.import_module(owner_module)).items() if not k.startswith("_")})
    run_source(EXAMPLES[name], f"<{name} Example::>", namespace)


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True

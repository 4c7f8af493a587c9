"""The README's Python examples run as written, each block on its own in a fresh
namespace (as a reader who copies one block runs it), so they stay true as the API moves
and none leans on an earlier block's imports or variables."""

import pathlib

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# ```python blocks that are signatures, not programs, by section heading.
SIGNATURES = ("`apply`",)


def python_blocks() -> list[tuple[str, int, str]]:
  """(section heading, line number, code) of each ```python block of the README."""
  blocks, heading, fence, code, start = [], None, None, [], 0
  for number, line in enumerate(README.read_text().splitlines(keepends=True), start=1):
    if fence is not None:                      # inside a code block
      if line.startswith("```"):
        if fence == "python":
          blocks.append((heading, start, "".join(code)))
        fence, code = None, []
      else:
        code.append(line)
    elif line.startswith("```"):
      fence, start = line.strip().removeprefix("```"), number + 1
    elif line.startswith("#"):
      heading = line.lstrip("#").strip()
  return blocks


RUNNABLE = [block for block in python_blocks() if block[0] not in SIGNATURES]


def test_blocks_found():
  headings = {heading for heading, _, _ in RUNNABLE}
  assert {"Quick start", "A short example of each", "Custom cells"} <= headings
  assert all(heading in {h for h, _, _ in python_blocks()} for heading in SIGNATURES)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("heading, line, code", RUNNABLE,
                         ids=[f"{heading} (line {line})" for heading, line, _ in RUNNABLE])
def test_block_runs_alone(heading, line, code):
  namespace: dict = {"__name__": "__readme__"}
  # Blank lines keep the README's line numbers in tracebacks.
  exec(compile("\n" * (line - 1) + code, f"README.md ({heading})", "exec"), namespace)
  checks = {
      "Quick start": lambda ns: ns["out"].shape == (32, 10, 64),
      "A short example of each": lambda ns: ns["y"].shape == (2, 16, 16, 4)
      and ns["out"].shape == (8, 16),
      "Custom cells": lambda ns: ns["y"].shape == (4, 10, 32),
  }
  assert checks.get(heading, lambda ns: True)(namespace)

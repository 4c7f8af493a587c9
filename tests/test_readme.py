"""The README's Python examples run as written (one namespace, in order), so they stay
true as the API moves."""

import pathlib

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
# Sections whose ```python blocks are runnable programs (the `apply` block is a signature).
RUNNABLE = ("Quick start", "Custom cells", "A short example of each")


def runnable_blocks() -> list[tuple[str, str]]:
  """(section heading, code) of each ```python block under a RUNNABLE heading."""
  blocks, heading, fence, code = [], None, None, []
  for line in README.read_text().splitlines(keepends=True):
    if fence is not None:                      # inside a code block
      if line.startswith("```"):
        if fence == "python" and heading in RUNNABLE:
          blocks.append((heading, "".join(code)))
        fence, code = None, []
      else:
        code.append(line)
    elif line.startswith("```"):
      fence = line.strip().removeprefix("```")
    elif line.startswith("#"):
      heading = line.lstrip("#").strip()
  return blocks


def test_every_runnable_section_has_code():
  assert {heading for heading, _ in runnable_blocks()} == set(RUNNABLE)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_readme_examples_run():
  namespace: dict = {}
  for heading, code in runnable_blocks():
    exec(compile(code, f"README.md: {heading}", "exec"), namespace)
  assert namespace["y"].shape == (2, 16, 16, 4)        # the ConvLSTM2D example's output
  assert namespace["out"].shape == (8, 16)              # the stateful stream's last output

"""A griffe extension for the API reference (mkdocs.yml): the docstrings' doctest
examples (`>>>` lines, `...` continuations and the expected output up to a blank line)
are shown as Python console code blocks instead of being read as Markdown quotes."""

import re

import griffe

_PROMPT = re.compile(r"^(\s*)>>> ")


def fence_doctests(text: str) -> str:
  """`text` with each doctest run wrapped in a ```pycon fence (indentation kept)."""
  lines, out, i = text.splitlines(), [], 0
  while i < len(lines):
    match = _PROMPT.match(lines[i])
    if not match:
      out.append(lines[i])
      i += 1
      continue
    indent = match.group(1)
    out.append(f"{indent}```pycon")
    while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
      out.append(lines[i])
      i += 1
    out.append(f"{indent}```")
  return "\n".join(out)


class DoctestBlocks(griffe.Extension):
  """Fences the doctests of every docstring griffe loads."""

  def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
    if obj.docstring is not None and ">>> " in obj.docstring.value:
      obj.docstring.value = fence_doctests(obj.docstring.value)

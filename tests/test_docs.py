"""The documentation: the site (mkdocs.yml: docs/ plus the API reference generated from
the docstrings by mkdocstrings) builds in strict mode, and every relative link and anchor
in README.md, docs/ and bench/ resolves in the repository (no network)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
                *(ROOT / "bench").rglob("*.md")])
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
  """`text` without fenced code blocks and inline code spans (links there are code)."""
  text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
  return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: pathlib.Path) -> set[str]:
  """The heading anchors GitHub (and mkdocs' toc) give a Markdown file."""
  seen: dict[str, int] = {}
  out = set()
  for line in re.sub(r"^(```|~~~).*?^\1", "", path.read_text(), flags=re.M | re.S).splitlines():
    match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
    if not match:
      continue
    slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug] = n + 1
    out.add(slug if n == 0 else f"{slug}-{n}")
  return out


def broken_links(page: pathlib.Path) -> list[str]:
  """Each relative link of `page` whose file or anchor does not exist."""
  broken = []
  for target in _LINK.findall(_prose(page.read_text())):
    if re.match(r"[a-z][a-z0-9+.-]*:", target):      # http:, https:, mailto:
      continue
    file_part, _, anchor = target.partition("#")
    file = (page.parent / file_part).resolve() if file_part else page
    if not file.exists():
      broken.append(f"{target}: no file {file}")
    elif anchor and file.suffix == ".md" and anchor not in anchors(file):
      broken.append(f"{target}: no heading #{anchor} in {file.name}")
  return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
  assert broken_links(page) == []


def test_link_check_sees_broken_links(tmp_path):
  (tmp_path / "other.md").write_text("# Other\n\n## A `code` heading\n")
  page = tmp_path / "page.md"
  page.write_text("# Page\n\n[ok](other.md#a-code-heading) [self](#page) [web](https://x.org)\n"
                  "[gone](missing.md) [bad anchor](other.md#nope) [bad self](#nope)\n"
                  "```\n[in code](missing.md)\n```\n")
  assert [b.split(":")[0] for b in broken_links(page)] == ["missing.md", "other.md#nope", "#nope"]


def test_pages_are_found():
  names = {str(p.relative_to(ROOT)) for p in PAGES}
  assert {"README.md", "docs/notebooks.md", "docs/api.md", "bench/README.md"} <= names


def test_site_builds_in_strict_mode(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stdout + result.stderr
  api = (tmp_path / "site" / "api" / "index.html").read_text()
  for name in ("rnnjax.LSTM", "rnnjax.RNN.apply", "rnnjax.kernels.which_path",
               "rnnjax.interop.from_torch", "rnnjax.checkpoint.save", "rnnjax.types.Params"):
    assert f'id="{name}"' in api, name

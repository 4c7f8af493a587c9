"""Builds rnnjax's one native part: the CPU LSTM's and GRU's forward and reverse scans as
XLA FFI handlers over oneDNN (csrc/cpu_rnn_forward.cc, csrc/cpu_rnn_reverse.cc ->
rnnjax/recurrences/_cpu_rnn*.so).

Optional: where it cannot be built (no C++ compiler), the install goes on without it and
rnnjax runs the same function as a plain XLA scan (`rnnjax.recurrences.native_available()`
says which). Built with -march=native for the machine that builds it.
"""

import importlib.metadata
import pathlib

from setuptools import Extension, setup


def _onednn_dirs() -> tuple[str, str]:
  """(include dir, lib dir) of the oneDNN wheels in the build environment."""
  files = importlib.metadata.distribution("onednn-devel-cpu-gomp").files or []
  header = next(pathlib.Path(str(f.locate())) for f in files if f.name == "dnnl.hpp")
  lib = next((pathlib.Path(str(f.locate())).parent for dist in
              ("onednn-devel-cpu-gomp", "onednn-cpu-gomp")
              for f in importlib.metadata.distribution(dist).files or []
              if f.name == "libdnnl.so"), None)
  return str(header.parent), str(lib or header.parent.parent / "lib")


def _extensions() -> list[Extension]:
  import jaxlib   # noqa: PLC0415 (a build requirement: its XLA FFI headers)
  try:
    include, lib = _onednn_dirs()
  except (importlib.metadata.PackageNotFoundError, StopIteration):
    return []     # no oneDNN wheel for this platform: the plain XLA scan only
  return [Extension(
      "rnnjax.recurrences._cpu_rnn",
      sources=["csrc/cpu_rnn_forward.cc", "csrc/cpu_rnn_reverse.cc"],
      depends=["csrc/cpu_rnn_common.h"],
      include_dirs=[str(pathlib.Path(jaxlib.__file__).parent / "include"), include],
      library_dirs=[lib],
      libraries=["dnnl"],
      language="c++",
      extra_compile_args=["-std=c++17", "-O3", "-march=native", "-fopenmp",
                          "-fno-math-errno", "-fno-trapping-math"],
      extra_link_args=["-fopenmp"],
      optional=True,
  )]


setup(ext_modules=_extensions())

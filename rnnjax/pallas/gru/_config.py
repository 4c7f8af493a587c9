"""Transitional: the names the layers' dispatch imported from here before
`rnnjax.pallas` exported `unsupported_reason(kind, dtype)`. Delete this file once the
dispatch uses the package's names."""

from ._cell import SPEC

GATES = SPEC.gates
options = SPEC.options
unsupported_reason = SPEC.unsupported_reason

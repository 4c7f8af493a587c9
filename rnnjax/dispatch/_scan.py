"""The scan engine as an implementation: it runs every cell, every option, everywhere."""

from .. import engine
from ._call import Call, CallSpec


class Scan:
  """`engine.rnn`: the one `lax.scan` (masks, resets, constants, dropout, unroll, remat)."""

  name = "scan"
  platform = None   # every platform

  def declines(self, spec: CallSpec) -> list[str]:
    del spec
    return []

  def run(self, call: Call) -> engine.RNNResult:
    o = call.spec.options
    return engine.rnn(
        call.spec.cell, call.params, call.inputs, call.start, mask=call.mask,
        reset=call.reset, go_backwards=o.go_backwards, unroll=1 if o.unroll is False else o.unroll,
        time_major=o.time_major, zero_output_for_mask=o.zero_output_for_mask,
        return_sequences=o.return_sequences, training=call.spec.training,
        constants=call.constants, dropout=call.dropout, remat=o.remat)


SCAN = Scan()

"""The public Mosaic GPU LSTM function (`mosaic_lstm`): the explicit opt-in to the Hopper
kernels, with the arguments of `rnnjax.pallas.fused_lstm` that the kernels support."""

import jax
import jax.numpy as jnp

from ... import _validation
from ...types import Array, ArrayLike, DTypeLike, Params
from .. import _checks, _shapes
from . import _lstm

GATES = 4


def mosaic_lstm(params: Params, inputs: ArrayLike, *,
                initial_state: tuple[ArrayLike, ArrayLike] | None = None,
                go_backwards: bool = False, time_major: bool = False,
                dtype: DTypeLike | None = None, interpret: bool | None = None,
                block_b: int | None = None) -> tuple[Array, tuple[Array, Array]]:
  """A Keras-semantics LSTM (tanh, sigmoid) as the Mosaic GPU (Hopper) kernels, with a
  backward: reverse mode runs the backward kernel; forward mode, higher orders and vmap
  compose too (a `jax.custom_jvp`, see `rnnjax.pallas.mosaic._autodiff`).

  Opt-in and unmeasured: nothing dispatches here automatically (see docs/kernels.md).
  W_hh stays resident in one CTA's shared memory, which bounds the units (bfloat16:
  U <= 128 at a batch tile of 64); larger U raises a ValueError naming the bytes.

  Args:
    params: {"kernel": (F, 4U), "recurrent_kernel": (U, 4U), optional "bias": (4U,)}.
    inputs: (B, T, F), or (T, B, F) when time_major.
    initial_state: (h, c), each (B, U); zeros when None.
    go_backwards: read time in reverse; outputs in processing order.
    dtype: bfloat16 or float16 (default: promotion of inputs and kernel, which must be
      one of them); float32 runs in interpret mode only.
    interpret: None: Mosaic GPU interpret mode unless on a GPU; or force it either way.
    block_b: batch columns per CTA, 64 or 128; None: the widest that fits.

  Returns:
    (outputs (B, T, U) (or (T, B, U)) in the compute dtype, (h, c) each (B, U) float32).

  >>> import jax, jax.numpy as jnp, rnnjax as rj
  >>> x = jnp.ones((2, 3, 8), jnp.bfloat16)
  >>> params = rj.LSTM(16).init(jax.random.key(0), x)
  >>> out, (h, c) = rj.kernels.mosaic_lstm(params, x, dtype=jnp.bfloat16, interpret=True)
  >>> out.shape, out.dtype, h.shape
  ((2, 3, 16), dtype(bfloat16), (2, 16))
  """
  features, units = _checks.check_params(params, GATES)
  batch, _ = _checks.check_inputs(inputs, features, time_major=time_major)
  _validation.check_bool(go_backwards, "go_backwards")
  _validation.check_bool(time_major, "time_major")
  h0, c0 = _checks.check_states(initial_state, 2, batch, units)
  cd = _checks.compute_dtype(dtype, inputs, params)
  x = _shapes.batch_major(jnp.asarray(inputs), time_major)
  projected = _shapes.project(x, params["kernel"], params.get("bias"), cd)
  outputs, h, c = _lstm.run(projected[:, :, None], params["recurrent_kernel"][None],
                            h0[None], c0[None], None, dtype=cd, directions=(go_backwards,),
                            interpret=interpret, block_b=block_b)
  return _shapes.batch_major(outputs[:, :, 0], time_major), (h[0], c[0])


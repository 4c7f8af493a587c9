"""The GRU's (Keras reset_after=True) gate math for the kernel scaffold
(`pallas._forward`, `pallas._backward`): Keras layout, gates z, r, h in column blocks of
kernel (F, 3U), recurrent_kernel (U, 3U) and bias (2, 3U) (row 0 input, row 1
recurrent); state h.

Layout: the recurrent biases of z and r add linearly, so they fold into the projection
slots; the candidate's, b_h, is multiplied by the reset gate, so the forward kernel
reads it as a (D, Hp) vector.
Forward, per step: z = sigmoid(xp[t, z] + h @ W_z);  r = sigmoid(xp[t, r] + h @ W_r)
  q = h @ W_h + b_h;  n = tanh(xp[t, h] + r * q);  h' = z * h + (1 - z) * n
It saves z, r, n, q. Backward, per step (dh zero on masked rows, h_prev the last h):
  dn = dh (1 - z) (1 - n^2);  dz = dh (h_prev - n) z (1 - z);  dq = dn r;
  dr = dn q r (1 - r);  dh <- dh z + dz @ W_z^T + dr @ W_r^T + dq @ W_h^T
(dz, dr, dn) is the projection slots' gradient; dW and the gradient of b_h come from
(dz, dr, dq) outside the kernel.
"""

import jax
import jax.numpy as jnp

from ..gated import GateSpec, StepGrads
from ._reference import gru as reference


def forward_step(x, rec, state, vectors):
  (h,), (bh,) = state, vectors
  z = jax.nn.sigmoid(x[0] + rec[0])
  r = jax.nn.sigmoid(x[1] + rec[1])
  q = rec[2] + bh
  n = jnp.tanh(x[2] + r * q)
  return (z * h + (1.0 - z) * n,), (z, r, n, q)


def backward_step(d, saved, now, before):
  del now   # only the state before the step enters the gradient
  (dh,), (z, r, n, q) = d, saved
  h_prev = before()
  dn = dh * (1.0 - z) * (1.0 - n * n)
  dz = dh * (h_prev - n) * z * (1.0 - z)
  dq = dn * r
  dr = dn * q * r * (1.0 - r)
  return StepGrads(projection=(dz, dr, dn), extra=(dq,), products=(dz, dr, dq),
                   direct=dh * z, carried=())


def fold_bias(projected: jax.Array, recurrent_bias: jax.Array | None):
  """projected (B, T, D, 3U) float32 (input bias included), recurrent_bias (D, 3U) or
  None -> (projected with the z, r recurrent biases added, (b_h (D, U) float32,))."""
  d, gu = projected.shape[2], projected.shape[3]
  u = gu // 3
  if recurrent_bias is None:
    return projected, (jnp.zeros((d, u), jnp.float32),)
  rb = recurrent_bias.astype(projected.dtype)
  zr = jnp.concatenate([rb[:, : 2 * u], jnp.zeros((d, u), rb.dtype)], axis=-1)
  return projected + zr.reshape((1, 1, d, gu)), (recurrent_bias[:, 2 * u:].astype(jnp.float32),)


def recurrent_grads(dxp, extra):
  """The recurrent products' operands (dz, dr, dq) (Bp, T, D, 3, Hp) and b_h's gradient."""
  (dq,) = extra
  return jnp.stack([dxp[:, :, :, 0], dxp[:, :, :, 1], dq], axis=3), (jnp.sum(dq, axis=(0, 1)),)


SPEC = GateSpec(name="gru", gates=3, residual_slots=4, states=1, backward_state=0,
                forward_step=forward_step, backward_step=backward_step, reference=reference,
                bias_rows=2, vectors=1, extra_grads=1, fold_bias=fold_bias,
                recurrent_grads=recurrent_grads)

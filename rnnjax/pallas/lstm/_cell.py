"""The LSTM's gate math for the kernel scaffold (`pallas._forward`, `pallas._backward`):
Keras layout, gates i, f, c (g), o in column blocks of kernel (F, 4U), recurrent_kernel
(U, 4U) and bias (4U,); states (h, c).

Forward, per step: z_k = xp[t, k] + h @ W_k;
  c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g);  h' = sigmoid(z_o) * tanh(c').
It saves the gate activations i, f, g, o, and the c sequence (the backward state).
Backward, per step (dh, dc zero on masked rows; c' this step's c, c_prev the last):
  dc_tot = dc + dh * o * (1 - tanh(c')^2)
  dz_i = dc_tot g i(1-i);  dz_f = dc_tot c_prev f(1-f);  dz_g = dc_tot i (1-g^2);
  dz_o = dh tanh(c') o(1-o)
  dh <- sum_k dz_k @ W_k^T;  dc <- dc_tot * f
"""

import jax
import jax.numpy as jnp

from ..gated import GateSpec, StepGrads
from ._reference import lstm as reference


def forward_step(x, rec, state, vectors):
  del vectors   # the LSTM has no recurrent bias
  h, c = state
  z = [a + r for a, r in zip(x, rec)]
  i, f, g, o = jax.nn.sigmoid(z[0]), jax.nn.sigmoid(z[1]), jnp.tanh(z[2]), jax.nn.sigmoid(z[3])
  c_new = f * c + i * g
  return (o * jnp.tanh(c_new), c_new), (i, f, g, o)


def backward_step(d, saved, now, before):
  dh, dc = d
  i, f, g, o = saved
  c_new, c_prev = now(), before()
  tc = jnp.tanh(c_new)
  dc_tot = dc + dh * o * (1.0 - tc * tc)
  dz = (dc_tot * g * i * (1.0 - i), dc_tot * c_prev * f * (1.0 - f),
        dc_tot * i * (1.0 - g * g), dh * tc * o * (1.0 - o))
  return StepGrads(projection=dz, extra=(), products=dz, direct=None, carried=(dc_tot * f,))


SPEC = GateSpec(name="lstm", gates=4, residual_slots=4, states=2, backward_state=1,
                forward_step=forward_step, backward_step=backward_step, reference=reference)

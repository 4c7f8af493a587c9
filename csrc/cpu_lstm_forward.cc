// The LSTM's inference forward on the CPU as one XLA FFI call (rnnjax/recurrences/_native.py).
//
// Same function as the scan in rnnjax/recurrences/_driver.py (`forward`, LSTM math, Keras
// gate order i, f, g, o), masks and resets included; what differs is how it runs:
//   - the input projection of every step is ONE oneDNN matmul, (T*B, K) @ (K, 4U) + bias;
//   - the recurrent kernel is reordered once per call into oneDNN's packed layout, and each
//     step is one oneDNN matmul h @ W accumulated onto that step's projected input;
//   - the gate math, the mask and the reset of a step are one pass over its (B, 4U) gates.
// XLA's loop dispatches several thunks per step and multiplies by an unpacked kernel; this
// is what the 2-6x of PyTorch's oneDNN LSTM over the scans comes from on small shapes.
//
// Per step t (valid, keep: the (T, B) flags, keep[t] = False where step t+1 resets):
//   z = x_t @ K + b + h @ W;  (h', c') = lstm(z, c);  where !valid[t]: (h', c') = (h, c);
//   hs[t] = h';  where !keep[t]: (h', c') = (h0, c0).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include "dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::matmul;
using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

// glibc's vector expf/tanhf (libmvec, a few ulp) for the simd gate loop: <math.h> declares
// them only under -ffast-math, whose finite-math and reassociation this file does not want.
extern "C" float expf(float) noexcept __attribute__((simd("notinbranch")));
extern "C" float tanhf(float) noexcept __attribute__((simd("notinbranch")));

inline float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The gates of every step, (T*B, 4U): kept per thread from call to call, since a fresh
// allocation of this size costs a page fault per 4 KiB on every call (~3 ms at 33 MB).
std::vector<float>& Workspace(size_t count) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer;
}

// The tangent's six coefficients of every step, each (T, B, U) (`_lstm_math.py`):
// A_i = g i(1-i), A_f = c f(1-f), A_g = i(1-g^2), A_o = tanh(c') o(1-o), f, o(1-tanh(c')^2).
struct Saved {
  float* at[6] = {};
};

// One call's arrays; rows are independent, so each thread runs its own rows through
// every step (no synchronisation per step).
struct Problem {
  int64_t steps, batch, units;
  float* z;                      // (T, B, 4U) projected inputs; each step adds h @ W
  float* h;                      // (B, U) the state, then the final state
  float* c;
  const float* h0;               // (B, U) the initial state (resets go back to it)
  const float* c0;
  const uint8_t* valid;          // (T, B) or null
  const uint8_t* keep;           // (T, B) or null: False where the next step resets
  float* hs;                     // (T, B, U) the carried h after each step
  Saved saved;                   // null pointers when not saving
  const memory* w_packed;        // (U, 4U) in the recurrent matmul's layout
  const memory* w_plain;         // (U, 4U) row-major, for a slice that cannot take it
};

// Step t's gate math for rows [r0, r1): reads z_t, updates the state, writes hs_t and
// (kSave) the coefficients, computed for masked rows too (as the scan saves them).
template <bool kValid, bool kKeep, bool kSave>
void GateRows(const Problem& p, int64_t t, int64_t r0, int64_t r1) {
  const int64_t units = p.units;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t row = t * p.batch + r;
    const float* zr = p.z + row * 4 * units;
    float* hr = p.h + r * units;
    float* cr = p.c + r * units;
    const bool v = !kValid || p.valid[row];
    if (kSave) {
      float* a[6];
      for (int j = 0; j < 6; ++j) a[j] = p.saved.at[j] + row * units;
#pragma omp simd
      for (int64_t u = 0; u < units; ++u) {
        const float i = Sigmoid(zr[u]);
        const float f = Sigmoid(zr[units + u]);
        const float g = tanhf(zr[2 * units + u]);
        const float o = Sigmoid(zr[3 * units + u]);
        const float c_new = f * cr[u] + i * g;
        const float tc = tanhf(c_new);
        a[0][u] = g * i * (1.0f - i);
        a[1][u] = cr[u] * f * (1.0f - f);
        a[2][u] = i * (1.0f - g * g);
        a[3][u] = tc * o * (1.0f - o);
        a[4][u] = f;
        a[5][u] = o * (1.0f - tc * tc);
        if (v) {
          cr[u] = c_new;
          hr[u] = o * tc;
        }
      }
    } else if (v) {
#pragma omp simd
      for (int64_t u = 0; u < units; ++u) {
        const float i = Sigmoid(zr[u]);
        const float f = Sigmoid(zr[units + u]);
        const float g = tanhf(zr[2 * units + u]);
        const float o = Sigmoid(zr[3 * units + u]);
        const float c_new = f * cr[u] + i * g;
        cr[u] = c_new;
        hr[u] = o * tanhf(c_new);
      }
    }
    std::memcpy(p.hs + row * units, hr, units * sizeof(float));
    if (kKeep && !p.keep[row]) {
      std::memcpy(hr, p.h0 + r * units, units * sizeof(float));
      std::memcpy(cr, p.c0 + r * units, units * sizeof(float));
    }
  }
}

// Rows [r0, r1) through every step on the calling thread: per step one oneDNN matmul
// z_t += h @ W (single-threaded inside the caller's parallel region), then the gates.
template <bool kValid, bool kKeep, bool kSave>
void RunRows(const Problem& p, int64_t r0, int64_t r1) {
  const int64_t rows = r1 - r0, gates = 4 * p.units;
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);
  memory::desc h_desc({rows, p.units}, Dt::f32, Tag::ab);
  memory::desc z_desc({rows, gates}, Dt::f32, Tag::ab);
  dnnl::post_ops accumulate;
  accumulate.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(accumulate);
  const memory* w = p.w_packed;
  matmul::primitive_desc pd;
  try {
    pd = matmul::primitive_desc(engine, h_desc, w->get_desc(), z_desc, attr);
  } catch (const dnnl::error&) {     // a slice of another height may want another layout
    w = p.w_plain;
    pd = matmul::primitive_desc(engine, h_desc, w->get_desc(), z_desc, attr);
  }
  matmul recurrent(pd);
  memory h_mem(h_desc, engine, p.h + r0 * p.units);
  memory z_mem(z_desc, engine, p.z + r0 * gates);
  for (int64_t t = 0; t < p.steps; ++t) {
    z_mem.set_data_handle(p.z + (t * p.batch + r0) * gates);
    recurrent.execute(stream, {{DNNL_ARG_SRC, h_mem}, {DNNL_ARG_WEIGHTS, *w},
                               {DNNL_ARG_DST, z_mem}});
    stream.wait();
    GateRows<kValid, kKeep, kSave>(p, t, r0, r1);
  }
}

// Returns false when a slice failed (a oneDNN error: no exception leaves the region).
template <bool kValid, bool kKeep, bool kSave>
bool RunAll(const Problem& p) {
  // Slices of at least 8 rows (a thinner matmul loses more than a thread gains).
  const int64_t slices =
      std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), p.batch / 8));
  bool ok = true;
#pragma omp parallel num_threads(slices) reduction(&& : ok)
  {
    const int64_t i = omp_get_thread_num(), n = omp_get_num_threads();
    try {
      RunRows<kValid, kKeep, kSave>(p, p.batch * i / n, p.batch * (i + 1) / n);
    } catch (const dnnl::error&) {
      ok = false;
    }
  }
  return ok;
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w,
                   ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                   ffi::Buffer<ffi::U8> valid, ffi::Buffer<ffi::U8> keep, bool projected,
                   bool has_valid, bool has_keep, ffi::ResultBuffer<ffi::F32> hs,
                   ffi::ResultBuffer<ffi::F32> h_out, ffi::ResultBuffer<ffi::F32> c_out,
                   const Saved& saved, bool save) {
  const auto xd = x.dimensions();
  if (xd.size() != 3 || w.dimensions().size() != 2) {
    return ffi::Error::InvalidArgument("lstm_forward: x must be (T, B, K), w (U, 4U)");
  }
  const int64_t steps = xd[0], batch = xd[1], k = xd[2];
  const int64_t units = w.dimensions()[0], gates = 4 * units;
  if (w.dimensions()[1] != gates || (projected && k != gates) ||
      (!projected && (kernel.dimensions()[0] != k || kernel.dimensions()[1] != gates)) ||
      h0.element_count() != batch * units || c0.element_count() != batch * units) {
    return ffi::Error::InvalidArgument("lstm_forward: inconsistent shapes");
  }
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);

  // z (T*B, 4U): every step's projected input (x @ K + b; x itself when `projected`, the
  // bias already in it), as one multi-threaded matmul.
  const size_t z_count = static_cast<size_t>(steps * batch * gates);
  std::vector<float>& z = Workspace(z_count);
  if (projected) {
    std::memcpy(z.data(), x.typed_data(), z_count * sizeof(float));
  } else {
    memory::desc src({steps * batch, k}, Dt::f32, Tag::ab);
    memory::desc wts({k, gates}, Dt::f32, Tag::ab);
    memory::desc b({1, gates}, Dt::f32, Tag::ab);
    memory::desc dst({steps * batch, gates}, Dt::f32, Tag::ab);
    matmul project(matmul::primitive_desc(engine, src, wts, b, dst));
    project.execute(stream, {{DNNL_ARG_SRC, memory(src, engine, x.typed_data())},
                             {DNNL_ARG_WEIGHTS, memory(wts, engine, kernel.typed_data())},
                             {DNNL_ARG_BIAS, memory(b, engine, bias.typed_data())},
                             {DNNL_ARG_DST, memory(dst, engine, z.data())}});
    stream.wait();
  }

  // W packed once, in the layout oneDNN picks for a slice's (rows, U) @ (U, 4U).
  const int64_t slice_rows = std::max<int64_t>(1, batch / std::max(1, omp_get_max_threads()));
  memory::desc probe_h({slice_rows, units}, Dt::f32, Tag::ab);
  memory::desc probe_z({slice_rows, gates}, Dt::f32, Tag::ab);
  memory::desc w_any({units, gates}, Dt::f32, Tag::any);
  memory::desc w_plain({units, gates}, Dt::f32, Tag::ab);
  matmul::primitive_desc probe(engine, probe_h, w_any, probe_z);
  memory w_user(w_plain, engine, w.typed_data());
  memory w_packed(probe.weights_desc(), engine);
  dnnl::reorder(w_user, w_packed).execute(stream, w_user, w_packed);
  stream.wait();

  std::memcpy(h_out->typed_data(), h0.typed_data(), batch * units * sizeof(float));
  std::memcpy(c_out->typed_data(), c0.typed_data(), batch * units * sizeof(float));
  const Problem p{steps, batch, units, z.data(), h_out->typed_data(), c_out->typed_data(),
                  h0.typed_data(), c0.typed_data(),
                  has_valid ? valid.typed_data() : nullptr,
                  has_keep ? keep.typed_data() : nullptr, hs->typed_data(), saved,
                  &w_packed, &w_user};
  auto dispatch = [&](auto kSave) {
    if (has_valid && has_keep) return RunAll<true, true, kSave()>(p);
    if (has_valid) return RunAll<true, false, kSave()>(p);
    if (has_keep) return RunAll<false, true, kSave()>(p);
    return RunAll<false, false, kSave()>(p);
  };
  const bool ok = save ? dispatch(std::true_type{}) : dispatch(std::false_type{});
  return ok ? ffi::Error::Success() : ffi::Error::Internal("lstm_forward: a oneDNN matmul failed");
}

// oneDNN reports failures (no memory, no implementation) as exceptions: an FFI error here.
template <typename... Args>
ffi::Error Guarded(Args&&... args) {
  try {
    return Forward(std::forward<Args>(args)...);
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("lstm_forward: oneDNN: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ffi::Error::Internal("lstm_forward: out of memory");
  }
}

ffi::Error LstmForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                       ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w,
                       ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                       ffi::Buffer<ffi::U8> valid, ffi::Buffer<ffi::U8> keep,
                       bool projected, bool has_valid, bool has_keep,
                       ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_out,
                       ffi::ResultBuffer<ffi::F32> c_out) {
  return Guarded(x, kernel, bias, w, h0, c0, valid, keep, projected, has_valid, has_keep,
                 hs, h_out, c_out, Saved{}, false);
}

ffi::Error LstmForwardSaving(
    ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel, ffi::Buffer<ffi::F32> bias,
    ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
    ffi::Buffer<ffi::U8> valid, ffi::Buffer<ffi::U8> keep, bool projected, bool has_valid,
    bool has_keep, ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_out,
    ffi::ResultBuffer<ffi::F32> c_out, ffi::ResultBuffer<ffi::F32> a_i,
    ffi::ResultBuffer<ffi::F32> a_f, ffi::ResultBuffer<ffi::F32> a_g,
    ffi::ResultBuffer<ffi::F32> a_o, ffi::ResultBuffer<ffi::F32> f,
    ffi::ResultBuffer<ffi::F32> b) {
  const Saved saved{{a_i->typed_data(), a_f->typed_data(), a_g->typed_data(),
                     a_o->typed_data(), f->typed_data(), b->typed_data()}};
  return Guarded(x, kernel, bias, w, h0, c0, valid, keep, projected, has_valid, has_keep,
                 hs, h_out, c_out, saved, true);
}

}  // namespace

// Arguments: x (T, B, K), kernel (K, 4U), bias (4U,), w (U, 4U), h0, c0 (B, U),
// valid, keep (T, B) uint8 (or empty without has_valid / has_keep).
#define RNNJAX_LSTM_ARGS                                                        \
  ffi::Ffi::Bind()                                                             \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::F32>>()                                            \
      .Arg<ffi::Buffer<ffi::U8>>()                                             \
      .Arg<ffi::Buffer<ffi::U8>>()                                             \
      .Attr<bool>("projected")                                                 \
      .Attr<bool>("has_valid")                                                 \
      .Attr<bool>("has_keep")                                                  \
      .Ret<ffi::Buffer<ffi::F32>>()                                            \
      .Ret<ffi::Buffer<ffi::F32>>()                                            \
      .Ret<ffi::Buffer<ffi::F32>>()

// Returns hs (T, B, U), h, c (B, U).
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForward, LstmForward, RNNJAX_LSTM_ARGS);

// Returns hs, h, c and the six coefficients, each (T, B, U).
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForwardSaving, LstmForwardSaving,
                              RNNJAX_LSTM_ARGS.Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

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
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// One step's gate math over rows [0, B): reads z (B, 4U) and the state, writes the state
// and the step's output row block.
template <bool kValid, bool kKeep>
void GateStep(int64_t batch, int64_t units, const float* z, float* h, float* c,
              const float* h0, const float* c0, const uint8_t* valid, const uint8_t* keep,
              float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < batch; ++r) {
    const float* zr = z + r * 4 * units;
    float* hr = h + r * units;
    float* cr = c + r * units;
    float* outr = out + r * units;
    const bool v = !kValid || valid[r];
    const bool k = !kKeep || keep[r];
    if (v) {
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
    std::memcpy(outr, hr, units * sizeof(float));
    if (!k) {
      std::memcpy(hr, h0 + r * units, units * sizeof(float));
      std::memcpy(cr, c0 + r * units, units * sizeof(float));
    }
  }
}

template <bool kValid, bool kKeep>
void Loop(int64_t steps, int64_t batch, int64_t units, float* z_all, float* h, float* c,
          const float* h0, const float* c0, const uint8_t* valid, const uint8_t* keep,
          float* hs, dnnl::stream& stream, const matmul& recurrent, const memory& w_packed,
          const memory& h_mem, const memory::desc& z_desc) {
  const int64_t gates = 4 * units;
  for (int64_t t = 0; t < steps; ++t) {
    float* z = z_all + t * batch * gates;
    memory z_mem(z_desc, Engine(), z);
    recurrent.execute(stream, {{DNNL_ARG_SRC, h_mem}, {DNNL_ARG_WEIGHTS, w_packed},
                               {DNNL_ARG_DST, z_mem}});
    stream.wait();
    GateStep<kValid, kKeep>(batch, units, z, h, c, h0, c0,
                            kValid ? valid + t * batch : nullptr,
                            kKeep ? keep + t * batch : nullptr, hs + t * batch * units);
  }
}

ffi::Error LstmForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                       ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w,
                       ffi::Buffer<ffi::F32> h0, ffi::Buffer<ffi::F32> c0,
                       ffi::Buffer<ffi::U8> valid, ffi::Buffer<ffi::U8> keep,
                       bool projected, bool has_valid, bool has_keep,
                       ffi::ResultBuffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> h_out,
                       ffi::ResultBuffer<ffi::F32> c_out) {
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
  // bias already in it); each step adds h @ W in place.
  const size_t z_count = static_cast<size_t>(steps * batch * gates);
  std::vector<float>& z_all = Workspace(z_count);
  if (projected) {
    std::memcpy(z_all.data(), x.typed_data(), z_count * sizeof(float));
  } else {
    memory::desc src({steps * batch, k}, Dt::f32, Tag::ab);
    memory::desc wts({k, gates}, Dt::f32, Tag::ab);
    memory::desc b({1, gates}, Dt::f32, Tag::ab);
    memory::desc dst({steps * batch, gates}, Dt::f32, Tag::ab);
    matmul project(matmul::primitive_desc(engine, src, wts, b, dst));
    project.execute(stream, {{DNNL_ARG_SRC, memory(src, engine, x.typed_data())},
                             {DNNL_ARG_WEIGHTS, memory(wts, engine, kernel.typed_data())},
                             {DNNL_ARG_BIAS, memory(b, engine, bias.typed_data())},
                             {DNNL_ARG_DST, memory(dst, engine, z_all.data())}});
    stream.wait();
  }
  // h @ W accumulated onto z (the sum post-op), W packed once for all steps.
  memory::desc h_desc({batch, units}, Dt::f32, Tag::ab);
  memory::desc w_plain({units, gates}, Dt::f32, Tag::ab);
  memory::desc w_any({units, gates}, Dt::f32, Tag::any);
  memory::desc z_desc({batch, gates}, Dt::f32, Tag::ab);
  dnnl::post_ops accumulate;
  accumulate.append_sum(1.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(accumulate);
  matmul::primitive_desc recurrent_pd(engine, h_desc, w_any, z_desc, attr);
  memory w_user(w_plain, engine, w.typed_data());
  memory w_packed(recurrent_pd.weights_desc(), engine);
  dnnl::reorder(w_user, w_packed).execute(stream, w_user, w_packed);
  stream.wait();
  matmul recurrent(recurrent_pd);

  float* h = h_out->typed_data();
  float* c = c_out->typed_data();
  std::memcpy(h, h0.typed_data(), batch * units * sizeof(float));
  std::memcpy(c, c0.typed_data(), batch * units * sizeof(float));
  memory h_mem(h_desc, engine, h);
  auto run = [&](auto loop) {
    loop(steps, batch, units, z_all.data(), h, c, h0.typed_data(), c0.typed_data(),
         valid.typed_data(), keep.typed_data(), hs->typed_data(), stream, recurrent,
         w_packed, h_mem, z_desc);
  };
  if (has_valid && has_keep) run(Loop<true, true>);
  else if (has_valid) run(Loop<true, false>);
  else if (has_keep) run(Loop<false, true>);
  else run(Loop<false, false>);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForward, LstmForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x (T, B, K)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // kernel (K, 4U)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // bias (4U,)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // w (U, 4U)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // h0 (B, U)
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c0 (B, U)
                                  .Arg<ffi::Buffer<ffi::U8>>()   // valid (T, B)
                                  .Arg<ffi::Buffer<ffi::U8>>()   // keep (T, B)
                                  .Attr<bool>("projected")
                                  .Attr<bool>("has_valid")
                                  .Attr<bool>("has_keep")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // hs (T, B, U)
                                  .Ret<ffi::Buffer<ffi::F32>>()  // h (B, U)
                                  .Ret<ffi::Buffer<ffi::F32>>()); // c (B, U)

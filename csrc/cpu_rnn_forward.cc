// The LSTM's and the GRU's forward on the CPU as one XLA FFI call each
// (rnnjax/recurrences/_native.py), optionally saving the tangent's coefficients.
//
// Same function as the scan in rnnjax/recurrences/_driver.py (`forward` with the math of
// `_lstm_math.py` / `_gru_math.py`: Keras gate orders, the GRU with reset_after=True),
// masks and resets included; what differs is how it runs:
//   - the recurrent kernel is reordered once per call into oneDNN's packed layout;
//   - the batch rows are split into one slice per thread, and the threads run the slices
//     through the steps a chunk of up to 32 steps at a time (rows are independent: no
//     synchronisation per step; a thread takes another's slice when that one is behind):
//     per chunk one oneDNN matmul projects the inputs, (n * rows, K) @ (K, GU) + bias; per
//     step one oneDNN matmul h @ W, then one pass of gate math, mask and reset.
// XLA's scan dispatches several thunks per step and multiplies by an unpacked kernel.
//
// Per step t (valid, keep: the (T, B) flags, keep[t] = False where step t+1 resets):
//   state' = cell(x_t @ K + b, h @ W (+ b_rec), state);  where !valid[t]: state' = state;
//   hs[t] = h';  where !keep[t]: state' = state0.
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "cpu_rnn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace rnnjax_cpu;  // NOLINT: the shared oneDNN helpers

// One call's arrays. `saved`: the coefficient arrays, or null pointers when not saving.
struct Problem {
  int64_t steps, batch, units, k;
  const float* x;                // (B, T, K) inputs, or (B, T, GU) when `projected`
  bool projected;                // x is already x @ K + b (input dropout hoists it)
  const float* kernel;           // (K, GU)
  const float* bias;             // (GU,)
  float* h;                      // (B, U) the state, then the final state
  float* c;                      // (B, U) the LSTM's cell state; null for the GRU
  const float* h0;               // (B, U) the initial state (resets go back to it)
  const float* c0;
  const float* b_rec;            // (GU,) the GRU's recurrent bias
  const uint8_t* valid;          // (T, B) or null
  const uint8_t* keep;           // (T, B) or null: False where the next step resets
  float* hs;                     // (B, T, U) the carried h after each step
  float* saved[6];
  const PackedMatrix* w;         // (U, GU)
};

// The LSTM (i, f, g, o): the recurrent matmul accumulates onto z. Saves the six (T, B, U)
// coefficients A_i = g i(1-i), A_f = c f(1-f), A_g = i(1-g^2), A_o = tanh(c') o(1-o), f,
// o(1-tanh(c')^2), computed for masked rows too (as the scan saves them).
struct Lstm {
  static constexpr int kGates = 4;
  static constexpr bool kSeparateHw = false;

  template <bool kSave, bool kUpdate>
  static void Row(const Problem& p, int64_t row, int64_t r, const float* zr, const float*) {
    const int64_t units = p.units;
    float* hr = p.h + r * units;
    float* cr = p.c + r * units;
    if (!kSave && !kUpdate) return;
    float* a[6] = {};
    for (int j = 0; kSave && j < 6; ++j) a[j] = p.saved[j] + row * units;
#pragma omp simd
    for (int64_t u = 0; u < units; ++u) {
      const float i = Sigmoid(zr[u]);
      const float f = Sigmoid(zr[units + u]);
      const float g = tanhf(zr[2 * units + u]);
      const float o = Sigmoid(zr[3 * units + u]);
      const float c_new = f * cr[u] + i * g;
      const float tc = tanhf(c_new);
      if (kSave) {
        a[0][u] = g * i * (1.0f - i);
        a[1][u] = cr[u] * f * (1.0f - f);
        a[2][u] = i * (1.0f - g * g);
        a[3][u] = tc * o * (1.0f - o);
        a[4][u] = f;
        a[5][u] = o * (1.0f - tc * tc);
      }
      if (kUpdate) {
        cr[u] = c_new;
        hr[u] = o * tc;
      }
    }
  }
};

// The GRU (z, r, h), reset_after=True: hw = h @ W + b_rec apart from z (r scales hw_h).
// Saves z (T, B, U), C = [(h-n) z(1-z), A_n hw_h r(1-r), A_n r] (T, B, 3U) and
// A_n = (1-z)(1-n^2) (T, B, U).
struct Gru {
  static constexpr int kGates = 3;
  static constexpr bool kSeparateHw = true;

  template <bool kSave, bool kUpdate>
  static void Row(const Problem& p, int64_t row, int64_t r, const float* xr,
                  const float* hwr) {
    const int64_t units = p.units;
    float* hr = p.h + r * units;
    float* sz = kSave ? p.saved[0] + row * units : nullptr;
    float* sc = kSave ? p.saved[1] + row * 3 * units : nullptr;
    float* sa = kSave ? p.saved[2] + row * units : nullptr;
    if (!kSave && !kUpdate) return;
#pragma omp simd
    for (int64_t u = 0; u < units; ++u) {
      const float z = Sigmoid(xr[u] + hwr[u]);
      const float rr = Sigmoid(xr[units + u] + hwr[units + u]);
      const float hh = hwr[2 * units + u];
      const float n = tanhf(xr[2 * units + u] + rr * hh);
      const float h_new = z * hr[u] + (1.0f - z) * n;
      if (kSave) {
        const float an = (1.0f - z) * (1.0f - n * n);
        sz[u] = z;
        sc[u] = (hr[u] - n) * z * (1.0f - z);
        sc[units + u] = an * hh * rr * (1.0f - rr);
        sc[2 * units + u] = an * rr;
        sa[u] = an;
      }
      if (kUpdate) hr[u] = h_new;
    }
  }
};

// z (n, rows, GU) = the projected inputs of steps [t0, t0 + n) and rows [r0, r0 + rows):
// one matmul over the batch-major x viewed as (n, rows, K) with strides (K, T*K, 1), or a
// copy.
void Project(const Problem& p, int64_t t0, int64_t n, int64_t r0, int64_t rows,
             int64_t gates, float* z, dnnl::stream& stream) {
  if (p.projected) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(z + (t * rows + r) * gates, p.x + ((r0 + r) * p.steps + t0 + t) * gates,
                    gates * sizeof(float));
      }
    }
    return;
  }
  dnnl::engine& engine = Engine();
  memory::desc src({n, rows, p.k}, Dt::f32, memory::dims{p.k, p.steps * p.k, 1});
  memory::desc wts({1, p.k, gates}, Dt::f32, Tag::abc);
  memory::desc b({1, 1, gates}, Dt::f32, Tag::abc);
  memory::desc dst({n, rows, gates}, Dt::f32, Tag::abc);
  const matmul& project = Cached({n, rows, p.k, gates, p.steps}, [&] {
    return matmul(matmul::primitive_desc(engine, src, wts, b, dst));
  });
  float* x = const_cast<float*>(p.x + (r0 * p.steps + t0) * p.k);
  project.execute(stream, {{DNNL_ARG_SRC, memory(src, engine, x)},
                           {DNNL_ARG_WEIGHTS, memory(wts, engine, const_cast<float*>(p.kernel))},
                           {DNNL_ARG_BIAS, memory(b, engine, const_cast<float*>(p.bias))},
                           {DNNL_ARG_DST, memory(dst, engine, z)}});
  stream.wait();
}

// Rows [r0, r1) through steps [t0, t0 + n), n <= kChunk, on the calling thread
// (single-threaded oneDNN inside the caller's parallel region): one input projection,
// then per step one matmul h @ W and the rows' gates.
template <typename Cell, bool kValid, bool kKeep, bool kSave>
void RunChunk(const Problem& p, int64_t r0, int64_t r1, int64_t t0, int64_t n,
              dnnl::stream& stream) {
  const int64_t rows = r1 - r0, units = p.units, gates = Cell::kGates * units;
  dnnl::engine& engine = Engine();
  memory::desc h_desc({rows, units}, Dt::f32, Tag::ab);
  memory::desc out_desc({rows, gates}, Dt::f32, Tag::ab);
  memory::desc bias_desc({1, gates}, Dt::f32, Tag::ab);
  // the LSTM's accumulates onto z (z_t += h @ W); the GRU's adds b_rec into its own buffer
  const auto [recurrent, w] = SliceMatmul(*p.w, rows, units, gates, Cell::kSeparateHw,
                                          !Cell::kSeparateHw);
  std::vector<float>& z = Workspace<0>(kChunk * rows * gates);
  std::vector<float>& hw = Workspace<1>(Cell::kSeparateHw ? rows * gates : 0);
  memory out_mem(out_desc, engine, Cell::kSeparateHw ? hw.data() : z.data());
  // memory objects are handles: `args` sees out_mem's data handle move step by step
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(h_desc, engine, p.h + r0 * units)},
      {DNNL_ARG_WEIGHTS, *w},
      {DNNL_ARG_DST, out_mem}};
  if (Cell::kSeparateHw) {
    args.emplace(DNNL_ARG_BIAS, memory(bias_desc, engine, const_cast<float*>(p.b_rec)));
  }
  Project(p, t0, n, r0, rows, gates, z.data(), stream);
  for (int64_t t = t0; t < t0 + n; ++t) {
    float* z_t = z.data() + (t - t0) * rows * gates;
    if (!Cell::kSeparateHw) out_mem.set_data_handle(z_t);
    recurrent->execute(stream, args);
    stream.wait();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t row = t * p.batch + r;
      const float* zr = z_t + (r - r0) * gates;
      const float* hwr = Cell::kSeparateHw ? hw.data() + (r - r0) * gates : nullptr;
      // a masked row keeps its state: a separate instantiation, since a store under a
      // runtime condition inside the simd loop ran 2x slower
      if (!kValid || p.valid[row]) {
        Cell::template Row<kSave, true>(p, row, r, zr, hwr);
      } else {
        Cell::template Row<kSave, false>(p, row, r, zr, hwr);
      }
      std::memcpy(p.hs + (r * p.steps + t) * units, p.h + r * units, units * sizeof(float));
      if (kKeep && !p.keep[row]) {
        std::memcpy(p.h + r * units, p.h0 + r * units, units * sizeof(float));
        if (p.c) std::memcpy(p.c + r * units, p.c0 + r * units, units * sizeof(float));
      }
    }
  }
}

// Arguments: x (B, T, K), kernel (K, GU), bias (GU,), w (U, GU), b_rec (GU,) (the GRU's;
// empty for the LSTM), h0, c0 (B, U) (c0 empty for the GRU), valid, keep (T, B) uint8
// (empty without has_valid / has_keep). Returns hs (B, T, U), the final state (h, c for
// the LSTM, h for the GRU), then with `save` the coefficients, time-major (T, B, .) (see
// the cells). x and hs are batch-major as the layers hold them, so that no transpose
// runs around the call; the coefficients are time-major for the backward's reverse scan.
// oneDNN reports failures (no memory, no implementation) as exceptions: FFI errors here.
template <typename Cell>
ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> kernel,
                   ffi::Buffer<ffi::F32> bias, ffi::Buffer<ffi::F32> w,
                   ffi::Buffer<ffi::F32> b_rec, ffi::Buffer<ffi::F32> h0,
                   ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::U8> valid,
                   ffi::Buffer<ffi::U8> keep, bool projected, bool has_valid, bool has_keep,
                   bool save, ffi::RemainingRets rets) try {
  constexpr bool kLstm = !Cell::kSeparateHw;
  const auto xd = x.dimensions();
  if (xd.size() != 3 || w.dimensions().size() != 2) {
    return ffi::Error::InvalidArgument("rnn_forward: x must be (B, T, K), w (U, GU)");
  }
  const int64_t batch = xd[0], steps = xd[1], k = xd[2];
  const int64_t units = w.dimensions()[0], gates = Cell::kGates * units;
  const size_t n_rets = 1 + (kLstm ? 2 : 1) + (save ? (kLstm ? 6 : 3) : 0);
  if (w.dimensions()[1] != gates || (projected && k != gates) ||
      (!projected && (kernel.dimensions()[0] != k || kernel.dimensions()[1] != gates ||
                      bias.element_count() != gates)) ||
      h0.element_count() != batch * units ||
      (kLstm ? c0.element_count() != batch * units : b_rec.element_count() != gates) ||
      rets.size() != n_rets) {
    return ffi::Error::InvalidArgument("rnn_forward: inconsistent shapes");
  }
  auto ret = [&](size_t i) -> float* {
    auto buffer = rets.get<ffi::Buffer<ffi::F32>>(i);
    return buffer.has_value() ? (*buffer)->typed_data() : nullptr;
  };
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);

  const PackedMatrix w_packed(w.typed_data(), units, gates, Tag::ab, batch, stream);

  Problem p{steps, batch, units, k, x.typed_data(), projected, kernel.typed_data(),
            bias.typed_data(), ret(1), kLstm ? ret(2) : nullptr,
            h0.typed_data(), kLstm ? c0.typed_data() : nullptr,
            kLstm ? nullptr : b_rec.typed_data(),
            has_valid ? valid.typed_data() : nullptr, has_keep ? keep.typed_data() : nullptr,
            ret(0), {}, &w_packed};
  for (size_t j = 0; save && j + (kLstm ? 3 : 2) < n_rets; ++j) {
    p.saved[j] = ret(j + (kLstm ? 3 : 2));
  }
  std::memcpy(p.h, p.h0, batch * units * sizeof(float));
  if (kLstm) std::memcpy(p.c, p.c0, batch * units * sizeof(float));
  const bool ok = WithFlags(has_valid, has_keep, [&](auto kValid, auto kKeep) {
    auto run = [&](auto kSave) {
      return RunSlices(batch, steps, [&](int64_t r0, int64_t r1, int64_t t0, int64_t n,
                                         dnnl::stream& chunk_stream) {
        RunChunk<Cell, kValid(), kKeep(), kSave()>(p, r0, r1, t0, n, chunk_stream);
      });
    };
    return save ? run(std::true_type{}) : run(std::false_type{});
  });
  return ok ? ffi::Error::Success() : ffi::Error::Internal("rnn_forward: a oneDNN matmul failed");
} catch (const dnnl::error& e) {
  return ffi::Error::Internal(std::string("rnn_forward: oneDNN: ") + e.what());
} catch (const std::bad_alloc&) {
  return ffi::Error::Internal("rnn_forward: out of memory");
}

}  // namespace

#define RNNJAX_RNN_FORWARD_BINDING                                             \
  ffi::Ffi::Bind()                                                             \
      .Arg<ffi::Buffer<ffi::F32>>()  /* x */                                   \
      .Arg<ffi::Buffer<ffi::F32>>()  /* kernel */                              \
      .Arg<ffi::Buffer<ffi::F32>>()  /* bias */                                \
      .Arg<ffi::Buffer<ffi::F32>>()  /* w */                                   \
      .Arg<ffi::Buffer<ffi::F32>>()  /* b_rec */                               \
      .Arg<ffi::Buffer<ffi::F32>>()  /* h0 */                                  \
      .Arg<ffi::Buffer<ffi::F32>>()  /* c0 */                                  \
      .Arg<ffi::Buffer<ffi::U8>>()   /* valid */                               \
      .Arg<ffi::Buffer<ffi::U8>>()   /* keep */                                \
      .Attr<bool>("projected")                                                 \
      .Attr<bool>("has_valid")                                                 \
      .Attr<bool>("has_keep")                                                  \
      .Attr<bool>("save")                                                      \
      .RemainingRets()

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmForward, Forward<Lstm>, RNNJAX_RNN_FORWARD_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxGruForward, Forward<Gru>, RNNJAX_RNN_FORWARD_BINDING);

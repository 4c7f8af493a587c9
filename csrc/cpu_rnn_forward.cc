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
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::matmul;
using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

// glibc's vector expf/tanhf (libmvec, a few ulp) for the simd gate loops: <math.h>
// declares them only under -ffast-math, whose finite-math and reassociation this file
// does not want.
extern "C" float expf(float) noexcept __attribute__((simd("notinbranch")));
extern "C" float tanhf(float) noexcept __attribute__((simd("notinbranch")));

inline float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A buffer kept per thread from call to call: a fresh allocation of a few MB costs a page
// fault per 4 KiB on every call.
template <int kWhich = 0>
std::vector<float>& Workspace(size_t count) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer;
}

// What `make()` returns for `key`, made once per thread and call site: creating a oneDNN
// primitive descriptor walks its implementations (tens of microseconds), as much as a
// small call's whole loop. One entry per shape seen.
template <typename Make>
auto& Cached(const std::vector<int64_t>& key, Make make) {
  thread_local std::map<std::vector<int64_t>, decltype(make())> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}

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
  int64_t packed_rows;           // the slice height the packed layout was picked for
  const memory* w_packed;        // (U, GU) in the recurrent matmul's layout
  const memory* w_plain;         // (U, GU) row-major, for a slice that cannot take it
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

// Steps whose inputs a thread projects at a time: its projected-input buffer is
// kChunk * rows * GU floats, whatever T is.
constexpr int64_t kChunk = 32;

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
  // the packed layout, or (when a slice of another height cannot take it) the plain one
  struct Recurrent {
    matmul primitive;
    bool plain;
  };
  // keyed by the packed layout's shape too: the layout depends on it, the primitive on both
  const Recurrent& recurrent = Cached({rows, units, gates, p.packed_rows}, [&] {
    dnnl::primitive_attr attr;
    if (!Cell::kSeparateHw) {      // the LSTM: z_t += h @ W
      dnnl::post_ops accumulate;
      accumulate.append_sum(1.0f);
      attr.set_post_ops(accumulate);
    }
    auto make = [&](const memory::desc& w) {
      return Cell::kSeparateHw
                 ? matmul::primitive_desc(engine, h_desc, w, bias_desc, out_desc, attr)
                 : matmul::primitive_desc(engine, h_desc, w, out_desc, attr);
    };
    try {
      return Recurrent{matmul(make(p.w_packed->get_desc())), false};
    } catch (const dnnl::error&) {
      return Recurrent{matmul(make(p.w_plain->get_desc())), true};
    }
  });
  std::vector<float>& z = Workspace<0>(kChunk * rows * gates);
  std::vector<float>& hw = Workspace<1>(Cell::kSeparateHw ? rows * gates : 0);
  memory out_mem(out_desc, engine, Cell::kSeparateHw ? hw.data() : z.data());
  // memory objects are handles: `args` sees out_mem's data handle move step by step
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory(h_desc, engine, p.h + r0 * units)},
      {DNNL_ARG_WEIGHTS, recurrent.plain ? *p.w_plain : *p.w_packed},
      {DNNL_ARG_DST, out_mem}};
  if (Cell::kSeparateHw) {
    args.emplace(DNNL_ARG_BIAS, memory(bias_desc, engine, const_cast<float*>(p.b_rec)));
  }
  Project(p, t0, n, r0, rows, gates, z.data(), stream);
  for (int64_t t = t0; t < t0 + n; ++t) {
    float* z_t = z.data() + (t - t0) * rows * gates;
    if (!Cell::kSeparateHw) out_mem.set_data_handle(z_t);
    recurrent.primitive.execute(stream, args);
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

// A slice of rows: the first step it has not run, and whether a thread holds it.
struct Slice {
  int64_t r0 = 0, r1 = 0;
  int64_t next = 0;                  // read and written only by the thread holding it
  std::atomic<bool> busy{false};
};

// Every slice through every step; false when a chunk failed (a oneDNN error: no
// exception leaves the region). A thread runs kChunk steps of one slice at a time, its
// own slice first, else any slice no thread holds; it leaves when every slice is done or
// held. Rows are independent, so no step waits for another slice; and where a thread gets
// no core (another process busy on it, a late wake-up), the others run its slices. A
// static split takes as long as its slowest thread: up to 2x on 2 cores with one busy.
template <typename Cell, bool kValid, bool kKeep, bool kSave>
bool RunAll(const Problem& p) {
  // Slices of at least 8 rows (a thinner matmul loses more than a thread gains).
  const int64_t slices =
      std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), p.batch / 8));
  std::vector<Slice> state(slices);
  for (int64_t i = 0; i < slices; ++i) {
    state[i].r0 = p.batch * i / slices;
    state[i].r1 = p.batch * (i + 1) / slices;
  }
  // at least 4 chunks per slice, so that a thread can take over part of another's
  const int64_t chunk = std::clamp<int64_t>((p.steps + 3) / 4, 1, kChunk);
  std::atomic<bool> ok{true};
#pragma omp parallel num_threads(slices)
  {
    dnnl::stream stream(Engine());
    const int64_t me = omp_get_thread_num();
    for (bool ran = true; ran && ok.load(std::memory_order_relaxed);) {
      ran = false;
      for (int64_t j = 0; j < slices && !ran; ++j) {
        Slice& s = state[(me + j) % slices];
        if (s.busy.exchange(true, std::memory_order_acquire)) continue;
        if (s.next < p.steps) {
          const int64_t n = std::min(chunk, p.steps - s.next);
          try {
            RunChunk<Cell, kValid, kKeep, kSave>(p, s.r0, s.r1, s.next, n, stream);
          } catch (const dnnl::error&) {
            ok = false;
          }
          s.next += n;
          ran = true;
        }
        s.busy.store(false, std::memory_order_release);
      }
    }
  }
  return ok;
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

  // W packed once, in the layout oneDNN picks for a slice's (rows, U) @ (U, GU).
  const int64_t slice_rows = std::max<int64_t>(1, batch / std::max(1, omp_get_max_threads()));
  memory::desc probe_h({slice_rows, units}, Dt::f32, Tag::ab);
  memory::desc probe_z({slice_rows, gates}, Dt::f32, Tag::ab);
  memory::desc w_any({units, gates}, Dt::f32, Tag::any);
  memory::desc w_plain({units, gates}, Dt::f32, Tag::ab);
  struct Packing {
    memory::desc packed;
    dnnl::reorder reorder;
  };
  const Packing& packing = Cached({slice_rows, units, gates}, [&] {
    const memory::desc packed = matmul::primitive_desc(engine, probe_h, w_any, probe_z)
                                    .weights_desc();
    return Packing{packed, dnnl::reorder(dnnl::reorder::primitive_desc(
                               engine, w_plain, engine, packed))};
  });
  memory w_user(w_plain, engine, w.typed_data());
  memory w_packed(packing.packed, engine);
  packing.reorder.execute(stream, w_user, w_packed);
  stream.wait();

  Problem p{steps, batch, units, k, x.typed_data(), projected, kernel.typed_data(),
            bias.typed_data(), ret(1), kLstm ? ret(2) : nullptr,
            h0.typed_data(), kLstm ? c0.typed_data() : nullptr,
            kLstm ? nullptr : b_rec.typed_data(),
            has_valid ? valid.typed_data() : nullptr, has_keep ? keep.typed_data() : nullptr,
            ret(0), {}, slice_rows, &w_packed, &w_user};
  for (size_t j = 0; save && j + (kLstm ? 3 : 2) < n_rets; ++j) {
    p.saved[j] = ret(j + (kLstm ? 3 : 2));
  }
  std::memcpy(p.h, p.h0, batch * units * sizeof(float));
  if (kLstm) std::memcpy(p.c, p.c0, batch * units * sizeof(float));
  auto dispatch = [&](auto kSave) {
    if (has_valid && has_keep) return RunAll<Cell, true, true, kSave()>(p);
    if (has_valid) return RunAll<Cell, true, false, kSave()>(p);
    if (has_keep) return RunAll<Cell, false, true, kSave()>(p);
    return RunAll<Cell, false, false, kSave()>(p);
  };
  const bool ok = save ? dispatch(std::true_type{}) : dispatch(std::false_type{});
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

// The LSTM's and the GRU's reverse scan on the CPU as one XLA FFI call each
// (rnnjax/recurrences/_native.py): the transpose of the tangent recurrence, the same
// function as `reverse` in rnnjax/recurrences/_tangent.py with the cells' `transpose`
// (`_lstm_math.py`, `_gru_math.py`), masks and resets included. Rows are independent, so
// the batch's row slices run on the threads as in the forward (cpu_rnn_common.h), a
// chunk of steps at a time from the last step back; per step one pass of the cell's
// transposed step and one oneDNN matmul g_hw @ W^T (W^T packed once per call).
//
// Per step t, from the last, with g the cotangents of the state after step t:
//   where !keep[t] (step t+1 reset): g0 += g, g = 0;   g_h += ct_hs[t];
//   where !valid[t]: the step passed its state through (g unchanged, g_a[t] = 0);
//   else (g_a[t], g_hw, g_state) = cell transpose; g = g_state + (0, ...) + g_hw @ W^T.
// At the end g += g0: the cotangents of the initial state.
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

// One call's arrays.
struct Problem {
  int64_t steps, batch, units;
  const float* coef[6];          // the saved coefficients, time-major (see the cells)
  const float* ct_hs;            // (B, T, U), batch-major as the layer's output
  const uint8_t* valid;          // (T, B) or null
  const uint8_t* keep;           // (T, B) or null: False where the next step resets
  float* g[2];                   // (B, U) the carried cotangents (h, c), then the result
  float* g0[2];                  // (B, U) the resets' sums, or null without keep
  float* ct_a;                   // (T, B, GA) the hoisted part's cotangent
  const PackedMatrix* wt;        // W^T (GU, U)
};

// The LSTM: coefficients (A_i, A_f, A_g, A_o, f, B), each (T, B, U). From (gh, gc):
// gc~ = gc + B gh; g_a = g_hw = (A_i gc~, A_f gc~, A_g gc~, A_o gh); gc_prev = f gc~;
// gh_prev = g_hw @ W^T. g_hw is written straight into ct_a (T, B, 4U).
struct Lstm {
  static constexpr int kGates = 4, kStates = 2;

  // where step t's g_hw rows of the slice go: ct_a itself
  static float* Ghw(const Problem& p, int64_t t, int64_t r0, float*) {
    return p.ct_a + (t * p.batch + r0) * 4 * p.units;
  }

  static void Row(const Problem& p, int64_t row, int64_t r, float* ghw) {
    const int64_t units = p.units;
    const float *ai = p.coef[0] + row * units, *af = p.coef[1] + row * units,
                *ag = p.coef[2] + row * units, *ao = p.coef[3] + row * units,
                *f = p.coef[4] + row * units, *b = p.coef[5] + row * units;
    float* gh = p.g[0] + r * units;
    float* gc = p.g[1] + r * units;
#pragma omp simd
    for (int64_t u = 0; u < units; ++u) {
      const float gct = gc[u] + b[u] * gh[u];
      ghw[u] = ai[u] * gct;
      ghw[units + u] = af[u] * gct;
      ghw[2 * units + u] = ag[u] * gct;
      ghw[3 * units + u] = ao[u] * gh[u];
      gc[u] = f[u] * gct;
    }
  }

  static void Masked(const Problem& p, int64_t, float* ghw) {
    std::memset(ghw, 0, 4 * p.units * sizeof(float));
  }

  // gh_prev = (g_hw @ W^T)
  static void Finish(const Problem& p, int64_t, int64_t r, const float* m) {
    std::memcpy(p.g[0] + r * p.units, m, p.units * sizeof(float));
  }
};

// The GRU: coefficients z (T, B, U), C (T, B, 3U). From gh: g_a = gh (T, B, U);
// g_hw = C (gh, gh, gh); gh_prev = z gh + g_hw @ W^T.
struct Gru {
  static constexpr int kGates = 3, kStates = 1;

  // where step t's g_hw rows of the slice go: a per-thread buffer
  static float* Ghw(const Problem&, int64_t, int64_t, float* buffer) { return buffer; }

  static void Row(const Problem& p, int64_t row, int64_t r, float* ghw) {
    const int64_t units = p.units;
    const float* c = p.coef[1] + row * 3 * units;
    const float* gh = p.g[0] + r * units;
    std::memcpy(p.ct_a + row * units, gh, units * sizeof(float));
#pragma omp simd
    for (int64_t u = 0; u < units; ++u) {
      ghw[u] = c[u] * gh[u];
      ghw[units + u] = c[units + u] * gh[u];
      ghw[2 * units + u] = c[2 * units + u] * gh[u];
    }
  }

  static void Masked(const Problem& p, int64_t row, float* ghw) {
    std::memset(p.ct_a + row * p.units, 0, p.units * sizeof(float));
    std::memset(ghw, 0, 3 * p.units * sizeof(float));
  }

  static void Finish(const Problem& p, int64_t row, int64_t r, const float* m) {
    const float* z = p.coef[0] + row * p.units;
    float* gh = p.g[0] + r * p.units;
#pragma omp simd
    for (int64_t u = 0; u < p.units; ++u) gh[u] = z[u] * gh[u] + m[u];
  }
};

// Rows [r0, r1) through the n steps before the last `done` ones, from the last back.
template <typename Cell, bool kValid, bool kKeep>
void RunChunk(const Problem& p, int64_t r0, int64_t r1, int64_t done, int64_t n,
              dnnl::stream& stream) {
  const int64_t rows = r1 - r0, units = p.units, gates = Cell::kGates * units;
  dnnl::engine& engine = Engine();
  const auto [matmul_t, wt] = SliceMatmul(*p.wt, rows, gates, units, false, false);
  std::vector<float>& ghw_buffer = Workspace<2>(rows * gates);
  std::vector<float>& m = Workspace<3>(rows * units);
  memory ghw_mem(memory::desc({rows, gates}, Dt::f32, Tag::ab), engine, ghw_buffer.data());
  // memory objects are handles: `args` sees ghw_mem's data handle move step by step
  const std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, ghw_mem},
      {DNNL_ARG_WEIGHTS, *wt},
      {DNNL_ARG_DST, memory(memory::desc({rows, units}, Dt::f32, Tag::ab), engine, m.data())}};
  for (int64_t t = p.steps - done - 1; t >= p.steps - done - n; --t) {
    float* ghw = Cell::Ghw(p, t, r0, ghw_buffer.data());
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t row = t * p.batch + r;
      if (kKeep && !p.keep[row]) {
        for (int s = 0; s < Cell::kStates; ++s) {
          float* g = p.g[s] + r * units;
          float* g0 = p.g0[s] + r * units;
          for (int64_t u = 0; u < units; ++u) g0[u] += g[u];
          std::memset(g, 0, units * sizeof(float));
        }
      }
      float* gh = p.g[0] + r * units;
      const float* ct = p.ct_hs + (r * p.steps + t) * units;
      for (int64_t u = 0; u < units; ++u) gh[u] += ct[u];
      if (kValid && !p.valid[row]) {
        Cell::Masked(p, row, ghw + (r - r0) * gates);
      } else {
        Cell::Row(p, row, r, ghw + (r - r0) * gates);
      }
    }
    ghw_mem.set_data_handle(ghw);
    matmul_t->execute(stream, args);
    stream.wait();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t row = t * p.batch + r;
      if (!kValid || p.valid[row]) Cell::Finish(p, row, r, m.data() + (r - r0) * units);
    }
  }
}

// Arguments: w (U, GU); the coefficients the saving forward returned (the LSTM's six
// (T, B, U); the GRU's z (T, B, U) and C (T, B, 3U)); ct_hs (B, T, U) (batch-major, as
// the forward's hs: no transpose around the call); the final state's cotangents (B, U)
// each (h, c for the LSTM, h for the GRU); valid, keep (T, B) uint8 (empty without
// has_valid / has_keep). Returns ct_a (T, B, 4U) (the LSTM) or (T, B, U) (the GRU), then
// the initial state's cotangents (B, U) each.
template <typename Cell>
ffi::Error Reverse(ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> ct_hs,
                   ffi::Buffer<ffi::U8> valid, ffi::Buffer<ffi::U8> keep, bool has_valid,
                   bool has_keep, ffi::RemainingArgs rest, ffi::RemainingRets rets) try {
  constexpr int kCoefficients = Cell::kStates == 2 ? 6 : 2;
  const auto hd = ct_hs.dimensions();
  if (hd.size() != 3 || w.dimensions().size() != 2) {
    return ffi::Error::InvalidArgument("rnn_reverse: ct_hs must be (B, T, U), w (U, GU)");
  }
  const int64_t batch = hd[0], steps = hd[1], units = hd[2];
  const int64_t gates = Cell::kGates * units;
  if (w.dimensions()[0] != units || w.dimensions()[1] != gates ||
      rest.size() != kCoefficients + Cell::kStates || rets.size() != 1 + Cell::kStates) {
    return ffi::Error::InvalidArgument("rnn_reverse: inconsistent shapes");
  }
  Problem p{steps, batch, units, {}, ct_hs.typed_data(),
            has_valid ? valid.typed_data() : nullptr, has_keep ? keep.typed_data() : nullptr,
            {}, {}, nullptr, nullptr};
  for (int j = 0; j < kCoefficients + Cell::kStates; ++j) {
    auto arg = rest.get<ffi::Buffer<ffi::F32>>(j);
    if (!arg.has_value()) return ffi::Error::InvalidArgument("rnn_reverse: not float32");
    const int64_t width = Cell::kStates == 1 && j == 1 ? 3 * units : units;
    const int64_t count = j < kCoefficients ? steps * batch * width : batch * units;
    if (arg->element_count() != count) {
      return ffi::Error::InvalidArgument("rnn_reverse: inconsistent shapes");
    }
    if (j < kCoefficients) p.coef[j] = arg->typed_data();
  }
  auto ret = [&](size_t i) { return (*rets.get<ffi::Buffer<ffi::F32>>(i))->typed_data(); };
  p.ct_a = ret(0);
  std::vector<float> g0(has_keep ? Cell::kStates * batch * units : 0, 0.0f);
  for (int s = 0; s < Cell::kStates; ++s) {
    p.g[s] = ret(1 + s);
    std::memcpy(p.g[s], rest.get<ffi::Buffer<ffi::F32>>(kCoefficients + s)->typed_data(),
                batch * units * sizeof(float));
    p.g0[s] = has_keep ? g0.data() + s * batch * units : nullptr;
  }
  dnnl::stream stream(Engine());
  const PackedMatrix wt(w.typed_data(), gates, units, Tag::ba, batch, stream);
  p.wt = &wt;
  const bool ok = WithFlags(has_valid, has_keep, [&](auto kValid, auto kKeep) {
    return RunSlices(batch, steps, [&](int64_t r0, int64_t r1, int64_t done, int64_t n,
                                       dnnl::stream& chunk_stream) {
      RunChunk<Cell, kValid(), kKeep()>(p, r0, r1, done, n, chunk_stream);
    });
  });
  if (has_keep) {
    for (int s = 0; s < Cell::kStates; ++s) {
      for (int64_t i = 0; i < batch * units; ++i) p.g[s][i] += p.g0[s][i];
    }
  }
  return ok ? ffi::Error::Success() : ffi::Error::Internal("rnn_reverse: a oneDNN matmul failed");
} catch (const dnnl::error& e) {
  return ffi::Error::Internal(std::string("rnn_reverse: oneDNN: ") + e.what());
} catch (const std::bad_alloc&) {
  return ffi::Error::Internal("rnn_reverse: out of memory");
}

}  // namespace

#define RNNJAX_RNN_REVERSE_BINDING                                             \
  ffi::Ffi::Bind()                                                             \
      .Arg<ffi::Buffer<ffi::F32>>()  /* w */                                   \
      .Arg<ffi::Buffer<ffi::F32>>()  /* ct_hs */                               \
      .Arg<ffi::Buffer<ffi::U8>>()   /* valid */                               \
      .Arg<ffi::Buffer<ffi::U8>>()   /* keep */                                \
      .Attr<bool>("has_valid")                                                 \
      .Attr<bool>("has_keep")                                                  \
      .RemainingArgs()               /* the coefficients, the final cotangents */ \
      .RemainingRets()

XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxLstmReverse, Reverse<Lstm>, RNNJAX_RNN_REVERSE_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnjaxGruReverse, Reverse<Gru>, RNNJAX_RNN_REVERSE_BINDING);

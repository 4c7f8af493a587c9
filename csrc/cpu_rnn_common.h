// What the native CPU recurrences (cpu_rnn_forward.cc, cpu_rnn_reverse.cc) share: oneDNN
// handles and caches, per-thread buffers, the packed recurrent matrix, and the scheduler
// that runs the batch's row slices through the steps on the OpenMP threads.
#ifndef RNNJAX_CSRC_CPU_RNN_COMMON_H_
#define RNNJAX_CSRC_CPU_RNN_COMMON_H_

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <type_traits>
#include <vector>

#include "dnnl.hpp"

namespace rnnjax_cpu {

using dnnl::matmul;
using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

// glibc's vector expf/tanhf (libmvec, a few ulp) for the simd gate loops: <math.h>
// declares them only under -ffast-math, whose finite-math and reassociation these files
// do not want.
extern "C" float expf(float) noexcept __attribute__((simd("notinbranch")));
extern "C" float tanhf(float) noexcept __attribute__((simd("notinbranch")));

inline float Sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A buffer kept per thread from call to call (one per kWhich): a fresh allocation of a
// few MB costs a page fault per 4 KiB on every call.
template <int kWhich>
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

// Steps a thread runs of one slice at a time (at most; fewer for short sequences): the
// forward's projected-input buffer is kChunk * rows * GU floats, whatever T is.
constexpr int64_t kChunk = 32;

// How many row slices the batch is cut into: one per thread, of at least 8 rows each (a
// thinner matmul loses more than a thread gains).
inline int64_t Slices(int64_t batch) {
  return std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), batch / 8));
}

// The (K, N) matrix at `data` (`user_tag` ab: row-major; ba: a transposed view),
// reordered once per call into the layout oneDNN's matmul picks for a slice's
// (rows, K) @ (K, N); `plain` is the matrix as given, for a slice of another height that
// cannot take the packed layout.
struct PackedMatrix {
  memory packed, plain;
  int64_t rows;   // the slice height the layout was picked for

  PackedMatrix(const float* data, int64_t k, int64_t n, Tag user_tag, int64_t batch,
               dnnl::stream& stream) {
    dnnl::engine& engine = Engine();
    rows = std::max<int64_t>(1, batch / Slices(batch));
    const memory::desc user({k, n}, Dt::f32, user_tag);
    struct Packing {
      memory::desc packed;
      dnnl::reorder reorder;
    };
    const Packing& packing = Cached({rows, k, n, static_cast<int64_t>(user_tag)}, [&] {
      const memory::desc probe_src({rows, k}, Dt::f32, Tag::ab);
      const memory::desc probe_dst({rows, n}, Dt::f32, Tag::ab);
      const memory::desc any({k, n}, Dt::f32, Tag::any);
      const memory::desc layout =
          matmul::primitive_desc(engine, probe_src, any, probe_dst).weights_desc();
      return Packing{layout, dnnl::reorder(dnnl::reorder::primitive_desc(
                                 engine, user, engine, layout))};
    });
    plain = memory(user, engine, const_cast<float*>(data));
    packed = memory(packing.packed, engine);
    packing.reorder.execute(stream, plain, packed);
    stream.wait();
  }
};

// A slice's matmul (rows, K) @ (K, N) with the packed matrix (or the plain one where the
// packed layout does not fit this height), optionally with a bias (1, N) or accumulating
// onto dst; cached per shape. Returns the primitive and the matrix memory to pass it.
inline std::pair<const matmul*, const memory*> SliceMatmul(const PackedMatrix& m,
                                                           int64_t rows, int64_t k,
                                                           int64_t n, bool bias,
                                                           bool accumulate) {
  struct Entry {
    matmul primitive;
    bool plain;
  };
  const Entry& entry = Cached({rows, k, n, m.rows, bias, accumulate}, [&] {
    dnnl::engine& engine = Engine();
    const memory::desc src({rows, k}, Dt::f32, Tag::ab);
    const memory::desc dst({rows, n}, Dt::f32, Tag::ab);
    const memory::desc bias_desc({1, n}, Dt::f32, Tag::ab);
    dnnl::primitive_attr attr;
    if (accumulate) {
      dnnl::post_ops sum;
      sum.append_sum(1.0f);
      attr.set_post_ops(sum);
    }
    auto make = [&](const memory::desc& w) {
      return bias ? matmul::primitive_desc(engine, src, w, bias_desc, dst, attr)
                  : matmul::primitive_desc(engine, src, w, dst, attr);
    };
    try {
      return Entry{matmul(make(m.packed.get_desc())), false};
    } catch (const dnnl::error&) {
      return Entry{matmul(make(m.plain.get_desc())), true};
    }
  });
  return {&entry.primitive, entry.plain ? &m.plain : &m.packed};
}

// A slice of rows: the steps it has run, and whether a thread holds it.
struct Slice {
  int64_t r0 = 0, r1 = 0;
  int64_t done = 0;                  // read and written only by the thread holding it
  std::atomic<bool> busy{false};
};

// Runs every slice of the batch through `steps` steps: run_chunk(r0, r1, done, n, stream)
// runs rows [r0, r1) through n steps after the `done` they have run. False when a chunk
// threw a oneDNN error (no exception leaves the parallel region).
//
// A thread runs a chunk of one slice at a time, its own slice first, else any slice no
// thread holds; it leaves when every slice is done or held. Rows are independent, so no
// step waits for another slice; and where a thread gets no core (another process busy on
// it, a late wake-up), the others run its slices: a static split takes as long as its
// slowest thread, up to 2x on 2 cores with one busy.
template <typename RunChunk>
bool RunSlices(int64_t batch, int64_t steps, RunChunk run_chunk) {
  const int64_t slices = Slices(batch);
  std::vector<Slice> state(slices);
  for (int64_t i = 0; i < slices; ++i) {
    state[i].r0 = batch * i / slices;
    state[i].r1 = batch * (i + 1) / slices;
  }
  // at least 4 chunks per slice, so that a thread can take over part of another's
  const int64_t chunk = std::clamp<int64_t>((steps + 3) / 4, 1, kChunk);
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
        if (s.done < steps) {
          const int64_t n = std::min(chunk, steps - s.done);
          try {
            run_chunk(s.r0, s.r1, s.done, n, stream);
          } catch (const dnnl::error&) {
            ok = false;
          }
          s.done += n;
          ran = true;
        }
        s.busy.store(false, std::memory_order_release);
      }
    }
  }
  return ok;
}

// fn(kA, kB) with the two flags as compile-time constants (std::true_type or
// std::false_type): each combination of masks and resets gets its own loop.
template <typename Fn>
auto WithFlags(bool a, bool b, Fn fn) {
  using T = std::true_type;
  using F = std::false_type;
  return a ? (b ? fn(T{}, T{}) : fn(T{}, F{})) : (b ? fn(F{}, T{}) : fn(F{}, F{}));
}

}  // namespace rnnjax_cpu

#endif  // RNNJAX_CSRC_CPU_RNN_COMMON_H_

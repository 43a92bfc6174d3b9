// What every layer implements, and the context a forward/backward pass runs in.
//
// Life cycle: the model builder constructs layers, calls `setup` once in order (each layer declares
// its parameters in the ParamStore and returns its output shape), finalises the store, then calls
// `reserve` with the largest batch and the backend's memory (buffers a layer keeps live there). Forward and backward
// then run for any batch n <= that size.
//
// Activations belong to the caller (Sequential): a layer reads `src`, writes `dst`, and in backward
// reads src/dst (as they were after forward) and diff_dst, writes diff_src (skipped when null) and
// overwrites its parameters' gradients. Anything else backward needs (winner positions, batch
// statistics, dropout masks) the layer keeps itself. Shapes are per sample: Dims::n is ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "textscale/engine/backend.h"
#include "textscale/engine/input.h"
#include "textscale/engine/params.h"

namespace textscale::engine {

// Per-layer time, filled when a Context carries one (textscale bench --profile): each layer call
// is bracketed by two Memory::mark()s (events on a GPU's queue, so the queue is not drained) and
// resolve() adds the times between them once the work is done.
struct Profile {
  struct Entry {
    std::string position;  // "3", "5.body.0"
    std::string layer;
    double forward_seconds = 0, backward_seconds = 0;
    std::int64_t calls = 0;
  };
  std::vector<Entry> entries;  // in the order the layers first ran forward
  Entry& at(const std::string& position) { return entries[slot(position)]; }
  std::size_t slot(const std::string& position) {
    auto found = index.find(position);
    if (found != index.end()) return found->second;
    index.emplace(position, entries.size());
    entries.push_back(Entry{position, {}, 0, 0, 0});
    return entries.size() - 1;
  }
  // A layer call between two marks of `memory`, timed by resolve().
  void add(std::size_t entry, bool forward, std::size_t begin, std::size_t end) {
    pending.push_back(Interval{entry, forward, begin, end});
  }
  // After memory.synchronize(): adds the pending calls' times to their entries, forgets the marks.
  void resolve(const Memory& memory) {
    for (const Interval& i : pending)
      (i.forward ? entries[i.entry].forward_seconds : entries[i.entry].backward_seconds) +=
          memory.seconds_between(i.begin, i.end);
    pending.clear();
    memory.forget_marks();
  }

 private:
  struct Interval {
    std::size_t entry;
    bool forward;
    std::size_t begin, end;
  };
  std::map<std::string, std::size_t> index;
  std::vector<Interval> pending;
};

template <typename T>
struct Context {
  Backend<T>* backend = nullptr;
  ParamStore<T>* params = nullptr;
  bool training = false;
  std::uint64_t seed = 0;  // run seed (dropout)
  std::int64_t step = 0;   // global optimizer step (dropout masks differ per step)
  Profile* profile = nullptr;
  // Index of this batch's first sample in the global batch (data parallelism: a rank's share
  // starts there), so that per-sample randomness does not depend on the number of ranks.
  std::int64_t sample_offset = 0;
  // The batch's time steps (InputBatch::width) and each row's real ones (InputBatch::lengths, in
  // the backend's memory; null: every step is real), set by Model::forward for the layers that
  // run over each row's real steps (recurrent layers, sequence pooling).
  Index steps = 0;
  const std::int32_t* lengths = nullptr;
  // When set, the model calls it during backward with an offset k into the flat gradient buffer
  // once every gradient at offsets >= k is final (layers declare parameters in forward order, so
  // k falls as backward proceeds); the gradient reducer starts all-reducing those buckets.
  std::function<void(Index)>* on_gradients_ready = nullptr;
  // When set, sums `count` doubles over the data-parallel ranks in place (synchronised batch
  // normalisation); unset: one process.
  std::function<void(double*, Index)>* allreduce_sum = nullptr;
};

template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;
  // One-line description for the model summary: "conv1d 256->256 k7".
  [[nodiscard]] virtual std::string describe() const = 0;
  // Declares parameters (named with `prefix`) and returns the per-sample output shape.
  virtual Dims setup(ParamStore<T>& params, const std::string& prefix, Dims src) = 0;
  virtual void reserve(Index /*max_batch*/, const Memory& /*memory*/) {}
  virtual void forward(Context<T>& ctx, Index n, const T* src, T* dst) = 0;
  virtual void backward(Context<T>& ctx, Index n, const T* src, const T* dst, const T* diff_dst, T* diff_src) = 0;
  // Multiply-adds of one forward pass per sample as a dense model would compute them (FLOPs = 2x).
  [[nodiscard]] virtual double forward_macs() const { return 0; }
};

// The first layer: turns a batch of ids (input.h: `in.n` rows of `length` ids) into activations.
// It reads the ids of the type ids() names and throws InputError for the other. No gradient flows
// past it.
template <typename T>
class InputLayer {
 public:
  virtual ~InputLayer() = default;
  [[nodiscard]] virtual std::string describe() const = 0;
  // The kind of ids the layer reads.
  [[nodiscard]] virtual IdType ids() const = 0;
  // Whether the layers after this one take rows narrower than `length` (a batch cut to its
  // longest row): the model's builder says so when every layer reads the width from the context.
  [[nodiscard]] virtual bool any_width() const { return false; }
  // `length`: ids a row (the batch's width).
  virtual Dims setup(ParamStore<T>& params, const std::string& prefix, Index length) = 0;
  virtual void reserve(Index /*max_batch*/, const Memory& /*memory*/) {}
  virtual void forward(Context<T>& ctx, const InputBatch& in, T* dst) = 0;
  // `diff_dst` is the caller's scratch from here on: the layer may overwrite it (the one-hot
  // convolution masks it in place for its ReLU instead of keeping a buffer of its output's size).
  virtual void backward(Context<T>& ctx, const InputBatch& in, const T* dst, T* diff_dst) = 0;
  [[nodiscard]] virtual double forward_macs() const { return 0; }
};

template <typename T>
using LayerPtr = std::unique_ptr<Layer<T>>;

}  // namespace textscale::engine

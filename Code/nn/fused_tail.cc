// The element-wise work of TIM-Net's temporal-aware block and GM-TCNet's gated unit as six TensorFlow ops (float
// and double), loops over the rows of a (B, T, F) tensor with the F channels innermost. TIM-Net: the causal
// convolution itself with its taps' time shifts (zero before the start; on AVX-512 in register tiles, so that its
// output reaches memory once, as z) + BatchNorm (batch statistics) + ReLU + SpatialDropout forward in 2 passes over memory, the block's sigmoid gate
// and its output's mean over time (TIM-Net's scale at the block's level) inside the second unit's last pass;
// backward in 2, writing the convolution's output gradient once per tap, shifted back by the tap's lag, so that its
// input and kernel gradients are one product each; the gate's backward, with the time mean's gradient, in one
// pass. GM-TCNet: after its two products, the sigmoid gates, the n branches' products and their mean in one pass
// each way, the rows split over the intra-op threads. The same mathematics as the TensorFlow path of
// training_kernels.py (_BatchNormReLU, gated_pair, gated_unit), which stays the reference and the fallback;
// fused_ops.py loads the library that setup.sh builds from this file.
//
// The BatchNorm ops move as little memory as the algebra allows, because they are bound by it: the forward op keeps
// the conv output z, not its centred form, and the backward op recomputes the centred value and the ReLU's
// condition from z (the same operations on the same values as the forward op, so the same result): neither the
// centred tensor nor the activation is written for the backward pass or read by it. The variance is the centred
// one, merged block by block (no second pass over z).

#include <algorithm>
#include <cmath>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <initializer_list>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Outputs `same` shaped like the (B, T, F) input 0.
absl::Status SameShapes(InferenceContext* c, std::vector<int> same) {
  ShapeHandle x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  for (int i : same) c->set_output(i, x);
  return absl::OkStatus();
}

// A causal convolution's k taps enter the BatchNorm ops as one kernel and leave them as one gradient: with lags[j]
// tap j's lag, the forward op computes z[t] = sum_j x[t - lags[j]] W_j itself from x and W = [W_0 .. W_{k-1}] (C,
// k F) (Convolution, below: no product written to memory, no shifted copies of x), and the backward op writes
// DZ[t, tap j] = dz[t + lags[j]], so that d W_j = x^T DZ[tap j] (one product for all taps) and d x = DZ W^T (one
// product instead of k, each shifted back in time, and their sum).
//
// Input 0 is (B, T, F): outputs `same` are (B, T, k F), k = len(lags); outputs `channel` are vectors of F.
absl::Status TapShapes(InferenceContext* c, std::vector<int> same, std::vector<int> channel) {
  ShapeHandle in, shape;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &in));
  std::vector<int32_t> lags;
  TF_RETURN_IF_ERROR(c->GetAttr("lags", &lags));
  tensorflow::shape_inference::DimensionHandle width;
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(in, 2), static_cast<int64_t>(lags.size()), &width));
  TF_RETURN_IF_ERROR(c->ReplaceDim(in, 2, width, &shape));
  for (int i : same) c->set_output(i, shape);
  for (int i : channel) c->set_output(i, c->Vector(c->Dim(in, 2)));
  return absl::OkStatus();
}

// Input 0 is x (B, T, C), input 1 the taps' kernels side by side (C, k F), k = len(lags): outputs `same` are
// (B, T, F), outputs `channel` vectors of F.
absl::Status ConvShapes(InferenceContext* c, std::vector<int> same, std::vector<int> channel) {
  ShapeHandle in, kernel, shape;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &in));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
  std::vector<int32_t> lags;
  TF_RETURN_IF_ERROR(c->GetAttr("lags", &lags));
  tensorflow::shape_inference::DimensionHandle channels;
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(kernel, 1), static_cast<int64_t>(lags.size()), /*evenly_divisible=*/true,
                               &channels));
  TF_RETURN_IF_ERROR(c->ReplaceDim(in, 2, channels, &shape));
  for (int i : same) c->set_output(i, shape);
  for (int i : channel) c->set_output(i, c->Vector(channels));
  return absl::OkStatus();
}

REGISTER_OP("FusedBnReluForward")
    .Input("x: T")          // (B, T, C) the convolution's input
    .Input("kernel: T")     // (C, k F) the taps' kernels side by side: tap j in columns j F .. j F + F - 1
    .Input("gamma: T")      // (F,)
    .Input("beta: T")       // (F,)
    .Input("mask: T")       // (B, 1, F) dropout mask of 0 or 1/(1-rate), or (0,) for none
    .Input("epsilon: T")    // scalar
    .Output("mean: T")      // (F,) of z[t] = sum_j x[t - lags[j]] kernel_j (0 for t < lags[j]), bias left out
    .Output("z: T")         // (B, T, F) the conv output z (bias left out)
    .Output("variance: T")  // (F,) biased
    .Output("inv: T")       // (F,) 1 / sqrt(variance + epsilon)
    .Output("y: T")         // (B, T, F) relu((z - mean) gamma inv mask + beta mask)
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return ConvShapes(c, {1, 4}, {0, 2, 3}); });

// FusedBnReluForward of a temporal-aware block's second unit with the block's sigmoid gate in its last pass: the
// activation y is not written, only what the block's output and backward pass need of it
REGISTER_OP("FusedBnReluGate")
    .Input("x: T")          // (B, T, C), as FusedBnReluForward's
    .Input("kernel: T")     // (C, k F)
    .Input("gamma: T")      // (F,)
    .Input("beta: T")       // (F,)
    .Input("mask: T")       // (B, 1, F) or (0,)
    .Input("epsilon: T")    // scalar
    .Input("gate_input: T")  // (B, T, F) the block's input
    .Output("mean: T")      // (F,)
    .Output("z: T")         // (B, T, F)
    .Output("variance: T")  // (F,)
    .Output("inv: T")       // (F,)
    .Output("out: T")       // (B, T, F) x sigmoid(y), y as FusedBnReluForward's
    .Output("gate: T")      // (B, T, F) sigmoid(y)
    .Output("time_mean: T")  // (B, F) out's mean over time: the block's share of TIM-Net's scale at its level
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ConvShapes(c, {1, 4, 5}, {0, 2, 3}));
      c->set_output(6, c->Matrix(c->Dim(c->input(0), 0), c->Dim(c->input(2), 0)));
      return absl::OkStatus();
    });

REGISTER_OP("FusedBnReluBackward")
    .Input("dy: T")          // (B, T, F)
    .Input("z: T")           // (B, T, F) the forward's conv output
    .Input("mean: T")        // (F,) the forward's mean of z
    .Input("gamma: T")       // (F,)
    .Input("beta: T")        // (F,)
    .Input("inv: T")         // (F,) the forward's 1 / sqrt(variance + epsilon)
    .Input("mask: T")        // (B, 1, F) the forward's dropout mask, or (0,) for none
    .Input("keep_scale: T")  // scalar 1/(1-rate)
    .Output("dz_taps: T")    // (B, T, k F) tap j's columns at t: dz[t + lags[j]] (0 past the end), dz = d loss / d z
    .Output("dgamma: T")     // (F,)
    .Output("dbeta: T")      // (F,)
    .Output("dbias: T")      // (F,) sum of dz
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return TapShapes(c, {0}, {1, 2, 3}); });

REGISTER_OP("FusedSigmoidGateGrad")
    .Input("dout: T")      // (B, T, F) the gradient of out from the layers after the block
    .Input("x: T")         // (B, T, F)
    .Input("gate: T")      // (B, T, F)
    .Input("dmean: T")     // (B, F) gradient of FusedBnReluGate's time_mean, or (0,) for none
    .Output("db: T")       // SigmoidGrad(gate, g x), g = dout + dmean / T at every time step
    .Output("dx_gate: T")  // g gate, x's gradient through the product
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapes(c, {0, 1}); });

// (B, T, n F) values and gate inputs -> out (B, T, F), gates (B, T, n F)
absl::Status GatedUnitShapes(InferenceContext* c) {
  ShapeHandle values;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &values));
  int64_t branches;
  TF_RETURN_IF_ERROR(c->GetAttr("branches", &branches));
  tensorflow::shape_inference::DimensionHandle features;
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(values, 2), branches, /*evenly_divisible=*/true, &features));
  ShapeHandle out;
  TF_RETURN_IF_ERROR(c->ReplaceDim(values, 2, features, &out));
  c->set_output(0, out);
  c->set_output(1, values);
  return absl::OkStatus();
}

REGISTER_OP("FusedGatedUnit")
    .Input("values: T")       // (B, T, n F) relu(x Wv + bv), branch b in columns b F .. b F + F - 1
    .Input("gate_inputs: T")  // (B, T, n F) relu(x Wg + bg)
    .Output("out: T")         // (B, T, F) (1/n) sum over b of values sigmoid(gate_inputs)
    .Output("gates: T")       // (B, T, n F) sigmoid(gate_inputs)
    .Attr("branches: int >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn(GatedUnitShapes);

REGISTER_OP("FusedGatedUnitGrad")
    .Input("dout: T")         // (B, T, F)
    .Input("values: T")       // (B, T, n F)
    .Input("gates: T")        // (B, T, n F)
    .Input("gate_inputs: T")  // (B, T, n F)
    .Output("dvalues: T")     // ReluGrad(dout/n gates, values)
    .Output("dgates: T")      // ReluGrad(SigmoidGrad(gates, dout/n values), gate_inputs)
    .Attr("branches: int >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(1));
      return absl::OkStatus();
    });

template <typename T>
using Vector = Eigen::TensorMap<Eigen::Tensor<T, 1, Eigen::RowMajor>>;
template <typename T>
using ConstVector = Eigen::TensorMap<Eigen::Tensor<const T, 1, Eigen::RowMajor>>;

// Rows go through the loops below in tiles of kTileRows rows: a tile's kTileRows nf values are contiguous and a
// multiple of 16, so that the loops over a tile vectorise without remainders (the channel vectors they use are tiled
// to its length: value i of a tile is channel i % nf). Loops of nf = 39 channels row by row left a scalar remainder
// in every row.
constexpr int64_t kTileRows = 16;
// Channel sums are accumulated in T per tile position over kBlockTiles tiles, then in double: a float accumulator
// over all 12 032 rows would round more than TensorFlow's reduction (BatchNorm's backward subtracts nearly equal
// sums); folding into double after every few tiles costs time (its conversions).
constexpr int64_t kBlockTiles = 8;
constexpr int64_t kBlockRows = kTileRows * kBlockTiles;

// tiled[s nf + f] = v[f] (times by[f] where given) for the kTileRows rows s of a tile
template <typename T>
void Tile(const T* v, int64_t nf, std::vector<T>* tiled, const T* by = nullptr) {
  tiled->resize(kTileRows * nf);
  for (int64_t s = 0; s < kTileRows; ++s) {
    for (int64_t f = 0; f < nf; ++f) (*tiled)[s * nf + f] = by ? v[f] * by[f] : v[f];
  }
}

// sum[f] (double) += the values of channel f in a tile accumulator acc; acc is reset to 0.
template <typename T>
void Fold(T* __restrict acc, int64_t nf, double* __restrict sum) {
  for (int64_t s = 0; s < kTileRows; ++s) {
    for (int64_t f = 0; f < nf; ++f) sum[f] += acc[s * nf + f];
  }
  std::fill_n(acc, kTileRows * nf, T(0));
}

// The channel transform of the forward pass for utterance b, tiled: u = (z - mean) scale + offset, scale = gamma inv
// mask[b], offset = beta mask[b] (the mask's 0 or 1/(1-rate) inside the ReLU: relu(u) m = relu(u m) for m >= 0). The
// backward pass recomputes u from z with the same operations, so its ReLU gradient (u > 0) is the forward's.
template <typename T>
struct Normalise {
  Normalise(const T* mean, const T* gamma, const T* inv, const T* beta, const T* mask, int64_t nf)
      : beta_(beta), mask_(mask), nf_(nf), scale_(nf) {
    for (int64_t f = 0; f < nf; ++f) scale_[f] = gamma[f] * inv[f];
    Tile(mean, nf, &mean_);
  }
  void Utterance(int64_t b) {  // tiles utterance b's scale and offset
    const T* m = mask_ ? mask_ + b * nf_ : nullptr;
    Tile(scale_.data(), nf_, &scale, m);
    Tile(beta_, nf_, &offset, m);
  }
  // value i of a tile of the utterance set by Utterance, z there: d = z - mean, and u from d. The one expression of
  // both, so that the backward pass' ReLU condition u > 0 is the forward's by construction
  T Centred(T z, int64_t i) const { return z - mean_[i]; }
  T Input(T centred, int64_t i) const { return centred * scale[i] + offset[i]; }

  std::vector<T> scale, offset;  // tiled, of the utterance set by Utterance

 private:
  const T *beta_, *mask_;
  int64_t nf_;
  std::vector<T> scale_, mean_;
};

// body(at, size) over the values of the (B, T, F) rows, utterance by utterance (after utterance(b)) in tiles of
// `size` values (a multiple of nf, at most kTileRows nf; `at` a multiple of nf); the kSums accumulators of `acc`
// (tiles of T) are folded into `sums` (double, nf per accumulator) every kBlockTiles tiles and at the end.
template <typename T, int kSums, typename Utterance, typename Body>
void Tiles(int64_t batch, int64_t steps, int64_t nf, std::vector<double>* sums, Utterance utterance, Body body) {
  const int64_t tile = kTileRows * nf;
  std::vector<T> acc(kSums * tile + 1, T(0));  // + 1: a pointer to pass where kSums is 0
  int64_t tiles = 0;
  for (int64_t b = 0; b < batch; ++b) {
    utterance(b);
    for (int64_t at = b * steps * nf, last = (b + 1) * steps * nf; at < last; at += tile) {
      body(at, std::min(tile, last - at), acc.data());
      if (++tiles % kBlockTiles == 0) {
        for (int k = 0; k < kSums; ++k) Fold(acc.data() + k * tile, nf, sums->data() + k * nf);
      }
    }
  }
  for (int k = 0; k < kSums; ++k) Fold(acc.data() + k * tile, nf, sums->data() + k * nf);
}

// The outputs 0, 1, ... of ctx, each (shape, where its data pointer goes).
template <typename T>
absl::Status Allocate(OpKernelContext* ctx, std::initializer_list<std::pair<TensorShape, T**>> outputs) {
  int i = 0;
  for (const auto& [shape, data] : outputs) {
    Tensor* out = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(i++, shape, &out));
    *data = out->flat<T>().data();
  }
  return absl::OkStatus();
}

// A BatchNorm kernel of a causal convolution's k taps (attr `lags`): with kConv, input 0 is the convolution's input
// x (B, T, C) and input 1 its taps' kernels side by side (C, k F); else input 0 is (B, T, F). kVectors inputs of F
// channels follow from input kFirstVector on.
template <typename T, bool kConv, int kFirstVector, int kVectors>
class BatchKernel : public OpKernel {
 public:
  explicit BatchKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<int32_t> lags;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("lags", &lags));
    for (int32_t lag : lags) {
      OP_REQUIRES(ctx, lag >= 0, absl::InvalidArgumentError("fused tail: a negative lag"));
    }
    lags_.assign(lags.begin(), lags.end());
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(ctx, x.dims() == 3, absl::InvalidArgumentError("fused tail: expected a (B, T, C) tensor"));
    int64_t nf = x.dim_size(2);
    if (kConv) {
      const Tensor& kernel = ctx->input(1);
      const int64_t taps = static_cast<int64_t>(lags_.size());
      OP_REQUIRES(ctx, kernel.dims() == 2 && kernel.dim_size(0) == x.dim_size(2) && kernel.dim_size(1) % taps == 0,
                  absl::InvalidArgumentError("fused tail: expected a (C, k F) kernel, k = len(lags)"));
      nf = kernel.dim_size(1) / taps;
    }
    for (int i = kFirstVector; i < kFirstVector + kVectors; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).NumElements() == nf,
                  absl::InvalidArgumentError("fused tail: a channel vector of the wrong length"));
    }
    Run(ctx, x, x.dim_size(0), x.dim_size(1), nf);
  }

 protected:
  virtual void Run(OpKernelContext* ctx, const Tensor& x, int64_t batch, int64_t steps, int64_t nf) = 0;
  std::vector<int64_t> lags_;  // tap j's lag
};

// The causal convolution itself, for BnReluForward's first pass: z[r] = sum_j x[r - lags[j]] kernel_j over the rows
// [start, end) of x (rows, C), kernel (C, k F), z (rows, F), where a row's time step t < lags[j] reads zeros. Each
// value is one running sum over the taps in order and each tap's channels in order. The products' output is never
// written to memory: a TensorFlow product of all taps wrote (B, T, k F) for this pass to read again, and in a
// training step these products are bound by such traffic, not by their arithmetic (docs/speed.md).
template <typename T>
class Convolution {
 public:
  Convolution(const T* x, const T* kernel, int64_t channels, int64_t nf, const std::vector<int64_t>& lags,
              int64_t steps)
      : x_(x), kernel_(kernel), channels_(channels), nf_(nf), lags_(lags), steps_(steps) {
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      vectors_ = nf <= 48 ? 3 : nf <= 80 ? 5 : 0;  // wider outputs take the plain loop
      if (vectors_ > 0) {  // tap j's kernel, channel c: 16 vectors_ values from (j C + c) 16 vectors_, zero past F
        const int64_t taps = static_cast<int64_t>(lags.size()), stride = 16 * vectors_;
        packed_.assign(taps * channels * stride, 0.0f);
        for (int64_t j = 0; j < taps; ++j) {
          for (int64_t c = 0; c < channels; ++c) {
            std::copy_n(kernel + c * taps * nf + j * nf, nf, packed_.data() + (j * channels + c) * stride);
          }
        }
        zeros_.assign(channels, 0.0f);
      }
    }
#endif
  }

  void Rows(int64_t start, int64_t end, T* z) const {
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      if (vectors_ == 3) return Tiles<8, 3>(start, end, z);
      if (vectors_ == 5) return Tiles<4, 5>(start, end, z);
    }
#endif
    const int64_t width = static_cast<int64_t>(lags_.size()) * nf_;
    for (int64_t r = start, t = start % steps_; r < end; ++r, t = t + 1 == steps_ ? 0 : t + 1) {
      T* __restrict zr = z + r * nf_;
      std::fill_n(zr, nf_, T(0));
      for (size_t j = 0; j < lags_.size(); ++j) {
        if (t < lags_[j]) continue;
        const T* xr = x_ + (r - lags_[j]) * channels_;
        for (int64_t c = 0; c < channels_; ++c) {
          const T v = xr[c];
          const T* __restrict w = kernel_ + c * width + j * nf_;
          for (int64_t f = 0; f < nf_; ++f) zr[f] += v * w[f];
        }
      }
    }
  }

 private:
#ifdef __AVX512F__
  // R rows at a time in a register tile of R x NV vectors of 16 floats, kept for the whole sum; then row by row
  template <int R, int NV>
  void Tiles(int64_t start, int64_t end, float* z) const {
    __mmask16 lanes[NV];
    for (int v = 0; v < NV; ++v) {
      lanes[v] = static_cast<__mmask16>((1u << std::clamp<int64_t>(nf_ - 16 * v, 0, 16)) - 1);
    }
    int64_t r = start;
    for (; r + R <= end; r += R) Tile<R, NV>(r, z, lanes);
    for (; r < end; ++r) Tile<1, NV>(r, z, lanes);
  }

  template <int R, int NV>
  void Tile(int64_t r, float* z, const __mmask16* lanes) const {
    __m512 acc[R][NV];
    for (int i = 0; i < R; ++i) for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    for (size_t j = 0; j < lags_.size(); ++j) {
      const float* rows[R];  // each row's input at its tap's lag, or zeros before the utterance's start
      for (int i = 0; i < R; ++i) {
        const int64_t t = (r + i) % steps_;
        rows[i] = t < lags_[j] ? zeros_.data() : x_ + (r + i - lags_[j]) * channels_;
      }
      const float* w = packed_.data() + j * channels_ * 16 * NV;
      for (int64_t c = 0; c < channels_; ++c) {
        __m512 b[NV];
        for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(w + c * 16 * NV + 16 * v);
        for (int i = 0; i < R; ++i) {
          const __m512 s = _mm512_set1_ps(rows[i][c]);
          for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(s, b[v], acc[i][v]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(z + (r + i) * nf_ + 16 * v, lanes[v], acc[i][v]);
    }
  }

  int vectors_ = 0;
  std::vector<float> packed_, zeros_;
#endif
  const T *x_, *kernel_;
  int64_t channels_, nf_;
  const std::vector<int64_t>& lags_;
  int64_t steps_;
};

// x, kernel, gamma, beta, mask, epsilon -> mean, z, variance, inv, y; with kGate, also gate_input -> ..., inv, out,
// gate, time_mean
template <typename T, bool kGate>
struct BnReluForward : BatchKernel<T, true, 2, 2> {
  using BatchKernel<T, true, 2, 2>::BatchKernel;
  void Run(OpKernelContext* ctx, const Tensor& x_in, int64_t batch, int64_t steps, int64_t nf) override {
    const Tensor& mask_in = ctx->input(4);
    const bool masked = mask_in.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask_in.NumElements() == batch * nf,
                absl::InvalidArgumentError("FusedBnReluForward: mask must be (B, 1, F)"));
    const std::vector<int64_t>& lags = this->lags_;
    const Convolution<T> convolution(x_in.flat<T>().data(), ctx->input(1).flat<T>().data(), x_in.dim_size(2), nf,
                                     lags, steps);
    const T* gamma = ctx->input(2).flat<T>().data();
    const T* beta = ctx->input(3).flat<T>().data();
    const T* mask = masked ? mask_in.flat<T>().data() : nullptr;
    const T epsilon = ctx->input(5).scalar<T>()();
    const TensorShape channel({nf}), narrow({batch, steps, nf});
    const T* x = nullptr;  // the gate's input
    if (kGate) {
      OP_REQUIRES(ctx, ctx->input(6).shape() == narrow,
                  absl::InvalidArgumentError("FusedBnReluGate: gate_input must be (B, T, F)"));
      x = ctx->input(6).flat<T>().data();
    }
    T *mean, *z, *variance, *inv, *y, *gate = nullptr, *time_mean = nullptr;  // y: the activation, or the gated
    OP_REQUIRES_OK(ctx, kGate ? Allocate<T>(ctx, {{channel, &mean}, {narrow, &z}, {channel, &variance},  // output
                                                  {channel, &inv}, {narrow, &y}, {narrow, &gate},
                                                  {TensorShape({batch, nf}), &time_mean}})
                              : Allocate<T>(ctx, {{channel, &mean}, {narrow, &z}, {channel, &variance},
                                                  {channel, &inv}, {narrow, &y}}));
    const int64_t rows = batch * steps, tile = kTileRows * nf;
    // pass 1, kBlockRows rows at a time (they stay in the L1 cache): z, the convolution; the block's mean and squared deviations from it, merged in double into the
    // running mean and sum of squared deviations (Chan, Golub and LeVeque's pairwise update): the centred variance
    // without a second pass over memory
    std::vector<double> run_mean(nf, 0.0), run_squares(nf, 0.0), block_sum(nf), block_squares(nf);
    std::vector<T> acc(tile, T(0)), block_mean(nf), tiled;
    int64_t seen = 0;
    for (int64_t start = 0; start < rows; start += kBlockRows) {
      const int64_t end = std::min(rows, start + kBlockRows), n = end - start, size = n * nf;
      convolution.Rows(start, end, z);
      const T* __restrict block = z + start * nf;
      std::fill(block_sum.begin(), block_sum.end(), 0.0);
      std::fill(block_squares.begin(), block_squares.end(), 0.0);
      for (int64_t at = 0; at < size; at += tile) {
        for (int64_t i = 0; i < std::min(tile, size - at); ++i) acc[i] += block[at + i];
      }
      Fold(acc.data(), nf, block_sum.data());
      for (int64_t f = 0; f < nf; ++f) block_mean[f] = static_cast<T>(block_sum[f] / static_cast<double>(n));
      Tile(block_mean.data(), nf, &tiled);
      for (int64_t at = 0; at < size; at += tile) {
        for (int64_t i = 0; i < std::min(tile, size - at); ++i) {
          const T centred = block[at + i] - tiled[i];
          acc[i] += centred * centred;
        }
      }
      Fold(acc.data(), nf, block_squares.data());
      const double count = static_cast<double>(n), total = static_cast<double>(seen + n);
      for (int64_t f = 0; f < nf; ++f) {
        // the squares about the block's rounded mean, moved to its exact mean; then the pairwise update
        const double exact = block_sum[f] / count, off = exact - block_mean[f];
        const double delta = exact - run_mean[f];
        run_mean[f] += delta * count / total;
        const double between = delta * delta * static_cast<double>(seen) * count / total;
        run_squares[f] += block_squares[f] - count * off * off + between;
      }
      seen += n;
    }
    for (int64_t f = 0; f < nf; ++f) {
      mean[f] = static_cast<T>(run_mean[f]);
      variance[f] = static_cast<T>(run_squares[f] / static_cast<double>(rows));
      inv[f] = T(1) / std::sqrt(variance[f] + epsilon);
    }
    // pass 2: y = relu(u), utterance by utterance (its mask); with kGate, gate = sigmoid(y), out = x gate and
    // out's mean over the utterance's time steps (summed per tile position, then in double)
    Normalise<T> u(mean, gamma, inv, beta, mask, nf);
    std::vector<double> none;
    std::vector<T> activation(kGate ? tile : 0), out_sum(kGate ? tile : 0, T(0));
    int64_t current = -1;  // the utterance whose time sum out_sum holds
    const auto close = [&]() {
      if (!kGate || current < 0) return;
      std::vector<double> total(nf, 0.0);
      Fold(out_sum.data(), nf, total.data());
      for (int64_t f = 0; f < nf; ++f) time_mean[current * nf + f] = static_cast<T>(total[f] / steps);
    };
    const auto utterance = [&](int64_t b) {
      u.Utterance(b);
      close();
      current = b;
    };
    Tiles<T, 0>(batch, steps, nf, &none, utterance, [&](int64_t at, int64_t size, T*) {
      const T* __restrict zt = z + at;
      T* __restrict yt = kGate ? activation.data() : y + at;
      for (int64_t i = 0; i < size; ++i) {
        const T value = u.Input(u.Centred(zt[i], i), i);
        yt[i] = value > T(0) ? value : T(0);
      }
      if (kGate) {  // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values; then x gate
        Vector<T>(gate + at, size) =
            ConstVector<T>(yt, size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
        Vector<T>(y + at, size) = ConstVector<T>(x + at, size) * ConstVector<T>(gate + at, size);
        const T* __restrict outt = y + at;
        T* __restrict sum = out_sum.data();
        for (int64_t i = 0; i < size; ++i) sum[i] += outt[i];
      }
    });
    close();
  }
};

// dy, z, mean, gamma, beta, inv, mask, keep_scale -> dz_taps, dgamma, dbeta, dbias
template <typename T>
struct BnReluBackward : BatchKernel<T, false, 2, 4> {
  using BatchKernel<T, false, 2, 4>::BatchKernel;
  void Run(OpKernelContext* ctx, const Tensor& dy_in, int64_t batch, int64_t steps, int64_t nf) override {
    const Tensor& mask_in = ctx->input(6);
    const bool masked = mask_in.NumElements() > 0;
    OP_REQUIRES(ctx, ctx->input(1).shape() == dy_in.shape(),
                absl::InvalidArgumentError("FusedBnReluBackward: dy and z must have one shape"));
    OP_REQUIRES(ctx, !masked || mask_in.NumElements() == batch * nf,
                absl::InvalidArgumentError("FusedBnReluBackward: mask must be (B, 1, F)"));
    const T* __restrict dy = dy_in.flat<T>().data();
    const T* __restrict z = ctx->input(1).flat<T>().data();
    const T* mean = ctx->input(2).flat<T>().data();
    const T* gamma = ctx->input(3).flat<T>().data();
    const T* beta = ctx->input(4).flat<T>().data();
    const T* inv = ctx->input(5).flat<T>().data();
    const T* mask = masked ? mask_in.flat<T>().data() : nullptr;
    const T keep = ctx->input(7).scalar<T>()();
    const std::vector<int64_t>& lags = this->lags_;
    const int64_t taps = static_cast<int64_t>(lags.size()), width = taps * nf;  // dz_taps (B, T, k F)
    const TensorShape channel({nf});
    T *dz_taps, *dgamma, *dbeta, *dbias;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{TensorShape({batch, steps, width}), &dz_taps}, {channel, &dgamma},
                                          {channel, &dbeta}, {channel, &dbias}}));
    const int64_t tile = kTileRows * nf;
    const T count = static_cast<T>(batch * steps);
    Normalise<T> u(mean, gamma, inv, beta, mask, nf);
    const auto utterance = [&](int64_t b) { u.Utterance(b); };
    // pass 1: sums of the ReLU's gradient g (dy where u > 0) and of g d, d = z - mean
    std::vector<double> sums(2 * nf, 0.0);
    Tiles<T, 2>(batch, steps, nf, &sums, utterance, [&](int64_t at, int64_t size, T* __restrict acc) {
      for (int64_t i = 0; i < size; ++i) {
        const T d = u.Centred(z[at + i], i);
        const T g = u.Input(d, i) > T(0) ? dy[at + i] : T(0);
        acc[i] += g;
        acc[tile + i] += g * d;
      }
    });
    // dz = gamma inv (g keep - dbeta / M - xhat dgamma / M), xhat = d inv, as _BatchNormReLU.backward
    std::vector<T> c_r(nf), c_d(nf), c_0(nf);
    for (int64_t f = 0; f < nf; ++f) {
      dbeta[f] = static_cast<T>(sums[f]) * keep;
      dgamma[f] = static_cast<T>(sums[nf + f]) * (keep * inv[f]);
      const T scale = gamma[f] * inv[f];
      c_r[f] = scale * keep;
      c_d[f] = scale * inv[f] * dgamma[f] / count;
      c_0[f] = scale * dbeta[f] / count;
    }
    std::vector<T> tiled_r, tiled_d, tiled_0, dz(tile);
    Tile(c_r.data(), nf, &tiled_r);
    Tile(c_d.data(), nf, &tiled_d);
    Tile(c_0.data(), nf, &tiled_0);
    for (int64_t b = 0; b < batch; ++b) {  // the rows t >= T - lags[j] of tap j read dz past the end: 0
      for (int64_t j = 0; j < taps; ++j) {
        for (int64_t t = std::max<int64_t>(0, steps - lags[j]); t < steps; ++t) {
          std::fill_n(dz_taps + (b * steps + t) * width + j * nf, nf, T(0));
        }
      }
    }
    // pass 2: dz a tile at a time, and its sum (d bias); dz at t goes to row t - lags[j] of each tap j
    std::vector<double> sum(nf, 0.0);
    Tiles<T, 1>(batch, steps, nf, &sum, utterance, [&](int64_t at, int64_t size, T* __restrict acc) {
      T* __restrict dzt = dz.data();
      for (int64_t i = 0; i < size; ++i) {
        const T d = u.Centred(z[at + i], i);
        const T g = u.Input(d, i) > T(0) ? dy[at + i] : T(0);
        const T value = g * tiled_r[i] - d * tiled_d[i] - tiled_0[i];
        dzt[i] = value;
        acc[i] += value;
      }
      const int64_t first = at / nf;
      for (int64_t r = first, t = first % steps; r < first + size / nf; ++r, t = t + 1 == steps ? 0 : t + 1) {
        for (int64_t j = 0; j < taps; ++j) {
          if (t >= lags[j]) std::copy_n(dzt + (r - first) * nf, nf, dz_taps + (r - lags[j]) * width + j * nf);
        }
      }
    });
    for (int64_t f = 0; f < nf; ++f) dbias[f] = static_cast<T>(sum[f]);
  }
};

// (dout, x, gate, dmean) -> (SigmoidGrad(gate, g x), g gate), g = dout + dmean[b] / T on utterance b's rows
template <typename T>
struct SigmoidGateGrad : OpKernel {
  explicit SigmoidGateGrad(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& dout_in = ctx->input(0);
    const Tensor& dmean_in = ctx->input(3);
    OP_REQUIRES(ctx, dout_in.dims() == 3,
                absl::InvalidArgumentError("FusedSigmoidGateGrad: dout must be (B, T, F)"));
    for (int i = 1; i < 3; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).shape() == dout_in.shape(),
                  absl::InvalidArgumentError("FusedSigmoidGateGrad: dout, x and gate must have one shape"));
    }
    const int64_t batch = dout_in.dim_size(0), steps = dout_in.dim_size(1), nf = dout_in.dim_size(2);
    const bool averaged = dmean_in.NumElements() > 0;
    OP_REQUIRES(ctx, !averaged || dmean_in.NumElements() == batch * nf,
                absl::InvalidArgumentError("FusedSigmoidGateGrad: dmean must be (B, F) or (0,)"));
    const T* __restrict dout = dout_in.flat<T>().data();
    const T* __restrict x = ctx->input(1).flat<T>().data();
    const T* __restrict gate = ctx->input(2).flat<T>().data();
    const T* dmean = averaged ? dmean_in.flat<T>().data() : nullptr;
    T *db, *dx;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{dout_in.shape(), &db}, {dout_in.shape(), &dx}}));
    std::vector<T> share(nf, T(0)), tiled;  // dmean[b] / T, tiled
    std::vector<double> none;
    const auto utterance = [&](int64_t b) {
      if (averaged) {
        for (int64_t f = 0; f < nf; ++f) share[f] = dmean[b * nf + f] / static_cast<T>(steps);
      }
      Tile(share.data(), nf, &tiled);
    };
    Tiles<T, 0>(batch, steps, nf, &none, utterance, [&](int64_t at, int64_t size, T*) {
      const T* __restrict extra = tiled.data();
      for (int64_t i = 0; i < size; ++i) {
        const T g = gate[at + i], d = dout[at + i] + extra[i];
        db[at + i] = d * x[at + i] * (g * (T(1) - g));  // TensorFlow's SigmoidGrad(y=g, dy=d x)
        dx[at + i] = d * g;
      }
    });
  }
};

// Chunks of this many elements stay in the L1 cache between the two steps of a gated unit's pass.
constexpr int64_t kChunk = 2048;

// A kernel of GM-TCNet's gated unit: inputs from kFirstBranched on are (B, T, n F) alike, `branches` = n.
template <typename T, int kFirstBranched, int kInputs>
class GatedUnitKernel : public OpKernel {
 public:
  explicit GatedUnitKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("branches", &branches_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& branched = ctx->input(kFirstBranched);
    OP_REQUIRES(ctx, branched.dims() == 3 && branched.dim_size(2) % branches_ == 0,
                absl::InvalidArgumentError("fused gated unit: expected (B, T, n F) values"));
    for (int i = kFirstBranched; i < kInputs; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).shape() == branched.shape(),
                  absl::InvalidArgumentError("fused gated unit: values, gates and gate inputs must have one shape"));
    }
    Run(ctx, branched, branched.dim_size(0) * branched.dim_size(1), branched.dim_size(2) / branches_);
  }

 protected:
  virtual void Run(OpKernelContext* ctx, const Tensor& branched, int64_t rows, int64_t nf) = 0;

  // body(start, end) over rows [start, end) in pieces of `unit` rows, on the intra-op threads (element-wise work:
  // any split gives the same values). GM-TCNet's unit sits between its values' and gates' products, which run side
  // by side: with one thread, one core would wait for it.
  template <typename Body>
  static void Rows(OpKernelContext* ctx, int64_t rows, int64_t unit, int64_t cost_per_row, Body body) {
    const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    const int64_t pieces = (rows + unit - 1) / unit;
    tensorflow::Shard(workers->num_threads, workers->workers, pieces, cost_per_row * unit,
                      [&](int64_t first, int64_t last) { body(first * unit, std::min(rows, last * unit)); });
  }

  int64_t branches_;
};

// (values, gate_inputs) -> (out, gates), as gated_unit: gates = sigmoid(gate_inputs), the (B, T, n, F) products
// summed over n in order, times 1/n
template <typename T>
struct GatedUnit : GatedUnitKernel<T, 0, 2> {
  using GatedUnitKernel<T, 0, 2>::GatedUnitKernel;
  void Run(OpKernelContext* ctx, const Tensor& values_in, int64_t rows, int64_t nf) override {
    const int64_t n = this->branches_, width = n * nf;
    const T* __restrict values = values_in.flat<T>().data();
    const T* gate_inputs = ctx->input(1).flat<T>().data();
    TensorShape out_shape = values_in.shape();
    out_shape.set_dim(2, nf);
    T *out, *gates;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{out_shape, &out}, {values_in.shape(), &gates}}));
    const T scale = static_cast<T>(1.0 / static_cast<double>(n));  // Python's 1.0 / branches, cast to T
    const int64_t chunk_rows = std::max<int64_t>(1, kChunk / width);
    this->Rows(ctx, rows, chunk_rows, 20 * width, [&](int64_t first, int64_t last) {
      for (int64_t start = first; start < last; start += chunk_rows) {
        const int64_t end = std::min(last, start + chunk_rows);
        const int64_t size = (end - start) * width;
        // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values
        Vector<T>(gates + start * width, size) =
            ConstVector<T>(gate_inputs + start * width, size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
        for (int64_t r = start; r < end; ++r) {
          const T* __restrict vr = values + r * width;
          const T* __restrict gr = gates + r * width;
          T* __restrict outr = out + r * nf;
          for (int64_t f = 0; f < nf; ++f) outr[f] = vr[f] * gr[f];
          for (int64_t b = 1; b < n; ++b) {
            for (int64_t f = 0; f < nf; ++f) outr[f] += vr[b * nf + f] * gr[b * nf + f];
          }
          for (int64_t f = 0; f < nf; ++f) outr[f] *= scale;
        }
      }
    });
  }
};

// (dout, values, gates, gate_inputs) -> (dvalues, dgates), as gated_unit's backward: dbranch = dout/n tiled over
// the n branches, dvalues = ReluGrad(dbranch gates, values), dgates = ReluGrad(SigmoidGrad(gates, dbranch values),
// gate_inputs)
template <typename T>
struct GatedUnitGrad : GatedUnitKernel<T, 1, 4> {
  using GatedUnitKernel<T, 1, 4>::GatedUnitKernel;
  void Run(OpKernelContext* ctx, const Tensor& values_in, int64_t rows, int64_t nf) override {
    const int64_t n = this->branches_, width = n * nf;
    const Tensor& dout_in = ctx->input(0);
    OP_REQUIRES(ctx, dout_in.NumElements() == rows * nf,
                absl::InvalidArgumentError("FusedGatedUnitGrad: dout must be (B, T, F)"));
    const T* __restrict dout = dout_in.flat<T>().data();
    const T* __restrict values = values_in.flat<T>().data();
    const T* __restrict gates = ctx->input(2).flat<T>().data();
    const T* __restrict gate_inputs = ctx->input(3).flat<T>().data();
    T *dvalues, *dgates;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{values_in.shape(), &dvalues}, {values_in.shape(), &dgates}}));
    const T scale = static_cast<T>(1.0 / static_cast<double>(n));
    this->Rows(ctx, rows, kTileRows, 10 * width, [&](int64_t first, int64_t last) {
      std::vector<T> dbranch(kTileRows * width);  // dout / n of a tile's rows, repeated over the n branches
      for (int64_t start = first; start < last; start += kTileRows) {
        const int64_t end = std::min(last, start + kTileRows), at = start * width;
        for (int64_t r = start; r < end; ++r) {
          for (int64_t b = 0; b < n; ++b) {
            T* __restrict row = dbranch.data() + (r - start) * width + b * nf;
            for (int64_t f = 0; f < nf; ++f) row[f] = dout[r * nf + f] * scale;
          }
        }
        const T* __restrict d = dbranch.data();
        for (int64_t i = 0; i < (end - start) * width; ++i) {  // the tile's values, contiguous: no remainder per row
          const T v = values[at + i], g = gates[at + i];
          dvalues[at + i] = v > T(0) ? d[i] * g : T(0);
          dgates[at + i] = gate_inputs[at + i] > T(0) ? d[i] * v * (g * (T(1) - g)) : T(0);  // SigmoidGrad(g, d v)
        }
      }
    });
  }
};

#define REGISTER(T)                                                                                       \
  REGISTER_KERNEL_BUILDER(Name("FusedBnReluForward").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
                          BnReluForward<T, false>);                                                        \
  REGISTER_KERNEL_BUILDER(Name("FusedBnReluGate").Device(DEVICE_CPU).TypeConstraint<T>("T"),               \
                          BnReluForward<T, true>);                                                         \
  REGISTER_KERNEL_BUILDER(Name("FusedBnReluBackward").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
                          BnReluBackward<T>);                                                              \
  REGISTER_KERNEL_BUILDER(Name("FusedSigmoidGateGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),          \
                          SigmoidGateGrad<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("FusedGatedUnit").Device(DEVICE_CPU).TypeConstraint<T>("T"), GatedUnit<T>);   \
  REGISTER_KERNEL_BUILDER(Name("FusedGatedUnitGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), GatedUnitGrad<T>);

REGISTER(float)
REGISTER(double)

}  // namespace

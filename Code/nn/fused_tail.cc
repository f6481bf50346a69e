// TIM-Net's temporal-aware block and GM-TCNet's gated unit, their convolutions included, as seven TensorFlow ops
// (float and double), loops over the rows of a (B, T, F) tensor with the F channels innermost. TIM-Net: the causal
// convolution itself, its taps' time shifts included (zero before the start; on AVX-512 in register tiles), +
// BatchNorm (batch statistics) + ReLU + SpatialDropout forward in 2 passes over memory, the block's sigmoid gate and
// its output's mean over time (TIM-Net's scale at the block's level) inside the second unit's last pass; backward in
// 2, the second utterance by utterance, with the convolution's input and kernel gradients from each utterance's
// output gradient while it is in the cache; the gate's backward, with the time mean's gradient, in one pass; and the
// whole block in inference (BatchNorm's moving statistics) in one op, utterance by utterance.
// GM-TCNet: its n value and n gate convolutions as one causal convolution, with their biases, ReLUs, the sigmoid
// gates and the branches' mean, in one op forward, and the input, kernel and bias gradients utterance by utterance
// in one op backward, on the intra-op threads. No product of a convolution is written to memory. The same
// mathematics as the TensorFlow path of training_kernels.py (_BatchNormReLU, gated_pair, gated_unit), which stays
// the reference and the fallback; fused_ops.py loads the library that setup.sh builds from this file.
//
// The BatchNorm ops move as little memory as the algebra allows, because they are bound by it: the forward op keeps
// the conv output z, not its centred form, and the backward op recomputes the centred value and the ReLU's
// condition from z (the same operations on the same values as the forward op, so the same result): neither the
// centred tensor nor the activation is written for the backward pass or read by it. The variance is the centred
// one, merged block by block (no second pass over z). In a training step even the convolutions' products are bound
// by memory traffic, not by their arithmetic, so they are done here, where their operands are (docs/speed.md).

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

// A causal convolution's k taps enter the BatchNorm ops as one kernel (C, k F), tap j's W_j (C, F) in columns j F ..:
// with lags[j] tap j's lag, the forward op computes z[t] = sum_j x[t - lags[j]] W_j, and the backward op the input
// gradient dx[t] = sum_j dz[t + lags[j]] W_j^T and the kernel gradient d W_j = sum_t x[t - lags[j]]^T dz[t] (TapProduct
// and KernelGradient, below): no product is written to memory, no shifted copy of x or dz either.
//
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
    .Input("x: T")           // (B, T, C) the convolution's input
    .Input("kernel: T")      // (C, k F) the taps' kernels side by side, as the forward op's
    .Output("dx: T")         // (B, T, C) sum_j dz[t + lags[j]] W_j^T (0 past the end), dz = d loss / d z
    .Output("dkernel: T")    // (C, k F) tap j's columns: sum_t x[t - lags[j]]^T dz[t]
    .Output("dgamma: T")     // (F,)
    .Output("dbeta: T")      // (F,)
    .Output("dbias: T")      // (F,) sum of dz
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(8));
      c->set_output(1, c->input(9));
      ShapeHandle dy;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &dy));
      for (int i = 2; i < 5; ++i) c->set_output(i, c->Vector(c->Dim(dy, 2)));
      return absl::OkStatus();
    });

REGISTER_OP("FusedSigmoidGateGrad")
    .Input("dout: T")      // (B, T, F) the gradient of out from the layers after the block
    .Input("x: T")         // (B, T, F)
    .Input("gate: T")      // (B, T, F)
    .Input("dmean: T")     // (B, F) gradient of FusedBnReluGate's time_mean, or (0,) for none
    .Output("db: T")       // SigmoidGrad(gate, g x), g = dout + dmean / T at every time step
    .Output("dx_gate: T")  // g gate, x's gradient through the product
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapes(c, {0, 1}); });

// A temporal-aware block in inference (BatchNorm with its moving statistics, no dropout), utterance by utterance:
// out = x sigmoid(b), b = relu((conv2(a) + bias2) scale2 + offset2), a = relu((conv1(x) + bias1) scale1 + offset1),
// scale = gamma / sqrt(moving variance + epsilon) and offset = beta - moving mean scale as tf.nn.batch_normalization
// computes them. Neither a nor b leaves the cache.
REGISTER_OP("FusedTemporalAwareInference")
    .Input("x: T")        // (B, T, F)
    .Input("kernel1: T")  // (F, k F) the first convolution's taps side by side, as FusedBnReluForward's
    .Input("bias1: T")    // (F,)
    .Input("scale1: T")   // (F,)
    .Input("offset1: T")  // (F,)
    .Input("kernel2: T")  // (F, k F)
    .Input("bias2: T")    // (F,)
    .Input("scale2: T")   // (F,)
    .Input("offset2: T")  // (F,)
    .Output("out: T")     // (B, T, F)
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapes(c, {0}); });

// GM-TCNet's gated unit (paper §3): its n value and n gate convolutions of one input as one causal convolution of
// W = 2 n F outputs. Input 0 is x (B, T, C), input 1 the kernel (C, k W): tap j in columns j W .. j W + W - 1, within
// a tap the n value convolutions (branch b in columns b F ..), then the n gate convolutions; outputs out (B, T, F) and
// activations (B, T, W), or (0,) where the attr `training` is false (inference keeps none).
absl::Status GatedUnitShapes(InferenceContext* c) {
  ShapeHandle in, kernel, out, activations;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &in));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
  std::vector<int32_t> lags;
  TF_RETURN_IF_ERROR(c->GetAttr("lags", &lags));
  int64_t branches;
  TF_RETURN_IF_ERROR(c->GetAttr("branches", &branches));
  tensorflow::shape_inference::DimensionHandle width, features;
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(kernel, 1), static_cast<int64_t>(lags.size()), true, &width));
  TF_RETURN_IF_ERROR(c->Divide(width, 2 * branches, /*evenly_divisible=*/true, &features));
  TF_RETURN_IF_ERROR(c->ReplaceDim(in, 2, features, &out));
  TF_RETURN_IF_ERROR(c->ReplaceDim(in, 2, width, &activations));
  bool training;
  TF_RETURN_IF_ERROR(c->GetAttr("training", &training));
  c->set_output(0, out);
  c->set_output(1, training ? activations : c->Vector(0));
  return absl::OkStatus();
}

REGISTER_OP("FusedGatedUnit")
    .Input("x: T")            // (B, T, C)
    .Input("kernel: T")       // (C, k W), W = 2 n F: the n value and n gate convolutions, as GatedUnitShapes says
    .Input("bias: T")         // (W,) the value convolutions' biases, then the gate convolutions'
    .Output("out: T")         // (B, T, F) (1/n) sum over b of v_b sigmoid(g_b)
    .Output("activations: T")  // (B, T, W) v = relu(value convolutions), then s = sigmoid(g), g = relu(gate
                               // convolutions), stored as -s where g's input is <= 0 (ReLU's gradient 0 there);
                               // (0,) in inference, where no gradient needs them
    .Attr("lags: list(int) >= 1")
    .Attr("branches: int >= 1")
    .Attr("training: bool = true")
    .Attr("T: {float, double}")
    .SetShapeFn(GatedUnitShapes);

REGISTER_OP("FusedGatedUnitGrad")
    .Input("dout: T")         // (B, T, F)
    .Input("activations: T")  // (B, T, W) FusedGatedUnit's
    .Input("x: T")            // (B, T, C)
    .Input("kernel: T")       // (C, k W)
    .Output("dx: T")          // (B, T, C) sum_j dp[t + lags[j]] W_j^T, dp = d loss / d (convolutions + bias)
    .Output("dkernel: T")     // (C, k W) tap j's columns: sum_t x[t - lags[j]]^T dp[t]
    .Output("dbias: T")       // (W,) sum of dp
    .Attr("lags: list(int) >= 1")
    .Attr("branches: int >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(2));
      c->set_output(1, c->input(3));
      c->set_output(2, c->Vector(c->Dim(c->input(1), 2)));
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

// A convolution's attr `lags` (tap j's lag), none negative.
absl::Status ReadLags(OpKernelConstruction* ctx, std::vector<int64_t>* lags) {
  std::vector<int32_t> read;
  TF_RETURN_IF_ERROR(ctx->GetAttr("lags", &read));
  for (int32_t lag : read) {
    if (lag < 0) return absl::InvalidArgumentError("fused ops: a negative lag");
  }
  lags->assign(read.begin(), read.end());
  return absl::OkStatus();
}

// Whether `kernel` is the (C, k W) kernel of a causal convolution of x (B, T, C) with k = `taps` taps side by side,
// W a multiple of `unit`.
bool IsTapKernel(const Tensor& x, const Tensor& kernel, int64_t taps, int64_t unit = 1) {
  return kernel.dims() == 2 && kernel.dim_size(0) == x.dim_size(2) && kernel.dim_size(1) % (taps * unit) == 0;
}

// A BatchNorm kernel of a causal convolution's k taps (attr `lags`): with kConv, input 0 is the convolution's input
// x (B, T, C) and input 1 its taps' kernels side by side (C, k F); else input 0 is (B, T, F). kVectors inputs of F
// channels follow from input kFirstVector on.
template <typename T, bool kConv, int kFirstVector, int kVectors>
class BatchKernel : public OpKernel {
 public:
  explicit BatchKernel(OpKernelConstruction* ctx) : OpKernel(ctx) { OP_REQUIRES_OK(ctx, ReadLags(ctx, &lags_)); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    OP_REQUIRES(ctx, x.dims() == 3, absl::InvalidArgumentError("fused tail: expected a (B, T, C) tensor"));
    int64_t nf = x.dim_size(2);
    if (kConv) {
      const Tensor& kernel = ctx->input(1);
      const int64_t taps = static_cast<int64_t>(lags_.size());
      OP_REQUIRES(ctx, IsTapKernel(x, kernel, taps),
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

// Values past the last row of BnReluBackward's buffer of an utterance's dz: KernelGradientTile reads each row 16 NV
// <= 80 values wide.
constexpr int64_t kDzSlack = 80;

#ifdef __AVX512F__
// tile(std::integral_constant<int, n>{}, at) over [0, count) in pieces of R, the last piece of the n < R left
// (every n a register tile of its own height, so that a remainder is not done one row at a time)
template <int R, typename Tile>
void Pieces(int64_t count, Tile tile, int64_t at = 0) {
  if constexpr (R > 0) {
    for (; at + R <= count; at += R) tile(std::integral_constant<int, R>{}, at);
    if (at < count) Pieces<R - 1>(count, tile, at);
  }
}

// Lanes of the NV vectors of 16 floats that hold `width` values (all 16, some or none).
template <int NV>
void VectorLanes(int64_t width, __mmask16* lanes) {
  for (int v = 0; v < NV; ++v) {
    lanes[v] = static_cast<__mmask16>((1u << std::clamp<int64_t>(width - 16 * v, 0, 16)) - 1);
  }
}

// KernelGradient on AVX-512 for one tap (lag) and the channels [c0, c0 + R): R x NV vectors of features summed in
// registers over the utterance's rows into sums (R rows of 16 NV). dz's rows are read 16 NV values wide: the buffer
// has room past its last row, and the lanes past nf are never used.
template <int R, int NV>
void KernelGradientTile(const float* __restrict x, const float* __restrict dz, int64_t channels, int64_t nf,
                        int64_t lag, int64_t steps, int64_t c0, float* __restrict sums) {
  __m512 acc[R][NV];
  for (int i = 0; i < R; ++i) for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t t = lag; t < steps; ++t) {
    __m512 d[NV];
    for (int v = 0; v < NV; ++v) d[v] = _mm512_loadu_ps(dz + t * nf + 16 * v);
    const float* xr = x + (t - lag) * channels + c0;
    for (int i = 0; i < R; ++i) {
      const __m512 s = _mm512_set1_ps(xr[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(s, d[v], acc[i][v]);
    }
  }
  for (int i = 0; i < R; ++i) for (int v = 0; v < NV; ++v) _mm512_storeu_ps(sums + (i * NV + v) * 16, acc[i][v]);
}

// KernelGradient on AVX-512: every tap's channels in tiles of R (the remainder in one smaller tile), the features in
// panels of 16 NV (the last one's lanes past nf are never used)
template <int R, int NV>
void KernelGradientTiles(const float* x, const float* dz, int64_t channels, int64_t nf,
                         const std::vector<int64_t>& lags, int64_t steps, double* wide) {
  const int64_t width = static_cast<int64_t>(lags.size()) * nf;
  float sums[R * NV * 16];
  for (size_t j = 0; j < lags.size(); ++j) {
    for (int64_t f0 = 0; f0 < nf; f0 += 16 * NV) {
      const int64_t panel = std::min<int64_t>(16 * NV, nf - f0);
      Pieces<R>(channels, [&](auto rows, int64_t c) {
        constexpr int kRows = decltype(rows)::value;
        KernelGradientTile<kRows, NV>(x, dz + f0, channels, nf, lags[j], steps, c, sums);
        for (int i = 0; i < kRows; ++i) {
          double* w = wide + (c + i) * width + j * nf + f0;
          for (int64_t f = 0; f < panel; ++f) w[f] += sums[i * NV * 16 + f];
        }
      });
    }
  }
}
#endif

// A causal convolution's products, computed where their operands are and never written to memory: a TensorFlow
// product of all taps wrote (B, T, k F) for the BatchNorm ops to read again, and in a training step these products
// are bound by such traffic, not by their arithmetic (docs/speed.md). With kernel (C, k F) holding tap j's W_j (C, F)
// in columns j F .., the forward convolution is out[r] = sum_j src[r - lags[j]] W_j (src (rows, C), out (rows, F);
// a time step t < lags[j] reads zeros) and the input gradient out[r] = sum_j src[r + lags[j]] W_j^T (src the
// convolution output's gradient (rows, F), out (rows, C); t + lags[j] >= T reads zeros). Each value is one running
// sum over the taps in order and each tap's channels in order; on AVX-512 (float) in register tiles of R rows x NV
// vectors of 16 floats kept for the whole sum, outputs wider than 80 in column panels of 48, else in a plain loop.
// Outputs 33 to 40 wide (TIM-Net's 39 filters) go two rows to a tile row: rows r and r + 1 lie side by side in
// memory, so 5 vectors hold both (78 of 80 lanes used, where one row in 3 vectors used 39 of 48), with one fused
// multiply-add in 6 fewer; the middle vector's lanes take row r's value below out_ and row r + 1's above.
template <typename T>
class TapProduct {
 public:
  TapProduct(const T* kernel, int64_t channels, int64_t nf, const std::vector<int64_t>& lags, bool gradient)
      : lags_(lags), sign_(gradient ? 1 : -1), in_(gradient ? nf : channels), out_(gradient ? channels : nf) {
    const int64_t taps = static_cast<int64_t>(lags.size());
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) vectors_ = out_ > 48 && out_ <= 80 ? 5 : 3;
#endif
    panel_ = vectors_ > 0 ? 16 * vectors_ : out_;  // outputs per panel; the plain loop's one panel is the whole row
    panels_ = (out_ + panel_ - 1) / panel_;
    // panel p, tap j, input channel i: the panel's outputs at ((p taps + j) in_ + i) panel_, zeros past out_
    packed_.assign(panels_ * taps * in_ * panel_, T(0));
    for (int64_t p = 0; p < panels_; ++p) {
      for (int64_t j = 0; j < taps; ++j) {
        for (int64_t i = 0; i < in_; ++i) {
          for (int64_t o = p * panel_; o < std::min(out_, (p + 1) * panel_); ++o) {
            packed_[((p * taps + j) * in_ + i) * panel_ + o - p * panel_] =
                gradient ? kernel[o * taps * nf + j * nf + i] : kernel[i * taps * nf + j * nf + o];
          }
        }
      }
    }
    zeros_.assign(in_, T(0));
    if (vectors_ == 3 && out_ > 32 && out_ <= 40) {  // two rows to a tile row: tap j, input i at (j in_ + i) 80
      paired_.assign(taps * in_ * 80, T(0));
      for (int64_t k = 0; k < taps * in_; ++k) {
        std::copy_n(packed_.data() + k * panel_, out_, paired_.data() + k * 80);
        std::copy_n(packed_.data() + k * panel_, out_, paired_.data() + k * 80 + out_);
      }
    }
  }

  // rows [start, end) of the output from src, into out (row start's output first); a row's time step is its index
  // modulo `steps`
  void Rows(const T* src, int64_t start, int64_t end, int64_t steps, T* out) const {
#ifdef __AVX512F__
    if constexpr (std::is_same_v<T, float>) {
      if (!paired_.empty()) {
        const int64_t pairs = (end - start) / 2;
        Pieces<4>(pairs, [&](auto n, int64_t at) {
          PairedTile<decltype(n)::value>(src, start + 2 * at, steps, out + 2 * at * out_);
        });
        if (2 * pairs == end - start) return;
        start += 2 * pairs;  // an odd range's last row
        out += 2 * pairs * out_;
      }
      if (vectors_ == 3) return Tiles<8, 3>(src, start, end, steps, out);
      if (vectors_ == 5) return Tiles<4, 5>(src, start, end, steps, out);
    }
#endif
    for (int64_t r = start; r < end; ++r) {
      T* __restrict o = out + (r - start) * out_;
      std::fill_n(o, out_, T(0));
      for (size_t j = 0; j < lags_.size(); ++j) {
        const T* __restrict row = Source(src, r, steps, j);
        const T* __restrict w = packed_.data() + j * in_ * panel_;
        for (int64_t i = 0; i < in_; ++i) {
          for (int64_t k = 0; k < out_; ++k) o[k] += row[i] * w[i * panel_ + k];
        }
      }
    }
  }

 private:
  // src's row that row r reads through tap j, or zeros where that is outside r's utterance
  const T* Source(const T* src, int64_t r, int64_t steps, size_t j) const {
    const int64_t t = r % steps + sign_ * lags_[j];
    return t < 0 || t >= steps ? zeros_.data() : src + (r + sign_ * lags_[j]) * in_;
  }

#ifdef __AVX512F__
  template <int R, int NV>
  void Tiles(const float* src, int64_t start, int64_t end, int64_t steps, float* out) const {
    for (int64_t p = 0; p < panels_; ++p) {  // a panel's packed kernel stays in the cache over the rows
      __mmask16 lanes[NV];
      VectorLanes<NV>(out_ - p * panel_, lanes);
      Pieces<R>(end - start, [&](auto rows, int64_t at) {
        Tile<decltype(rows)::value, NV>(src, start + at, steps, p, out + at * out_ + p * panel_, lanes);
      });
    }
  }

  // rows r .. r + R - 1 of panel p into out (row r's first)
  template <int R, int NV>
  void Tile(const float* src, int64_t r, int64_t steps, int64_t p, float* out, const __mmask16* lanes) const {
    __m512 acc[R][NV];
    for (int i = 0; i < R; ++i) for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    const int64_t taps = static_cast<int64_t>(lags_.size());
    for (int64_t j = 0; j < taps; ++j) {
      const float* rows[R];
      for (int i = 0; i < R; ++i) rows[i] = Source(src, r + i, steps, j);
      const float* w = packed_.data() + (p * taps + j) * in_ * 16 * NV;
      for (int64_t c = 0; c < in_; ++c) {
        __m512 b[NV];
        for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(w + c * 16 * NV + 16 * v);
        for (int i = 0; i < R; ++i) {
          const __m512 s = _mm512_set1_ps(rows[i][c]);
          for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(s, b[v], acc[i][v]);
        }
      }
    }
    for (int i = 0; i < R; ++i) {
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(out + i * out_ + 16 * v, lanes[v], acc[i][v]);
    }
  }

  // rows r .. r + 2 R - 1 into out (row r's first), rows r + 2 i and r + 2 i + 1 in one tile row of 5 vectors
  template <int R>
  void PairedTile(const float* src, int64_t r, int64_t steps, float* out) const {
    __m512 acc[R][5];
    for (int i = 0; i < R; ++i) for (int v = 0; v < 5; ++v) acc[i][v] = _mm512_setzero_ps();
    const auto upper = static_cast<__mmask16>(0xffffu << (out_ - 32));  // vector 2's lanes of the second row
    const int64_t taps = static_cast<int64_t>(lags_.size());
    for (int64_t j = 0; j < taps; ++j) {
      const float* rows[2 * R];
      for (int i = 0; i < 2 * R; ++i) rows[i] = Source(src, r + i, steps, j);
      const float* w = paired_.data() + j * in_ * 80;
      for (int64_t c = 0; c < in_; ++c) {
        __m512 b[5];
        for (int v = 0; v < 5; ++v) {
          b[v] = _mm512_loadu_ps(w + c * 80 + 16 * v);
          // kept in a register: GCC otherwise reads each from memory once per row pair, and the loads, not the
          // multiply-adds, then bound the loop (twice as slow)
          asm("" : "+v"(b[v]));
        }
        for (int i = 0; i < R; ++i) {
          const __m512 first = _mm512_set1_ps(rows[2 * i][c]), second = _mm512_set1_ps(rows[2 * i + 1][c]);
          const __m512 both = _mm512_mask_blend_ps(upper, first, second);
          acc[i][0] = _mm512_fmadd_ps(first, b[0], acc[i][0]);
          acc[i][1] = _mm512_fmadd_ps(first, b[1], acc[i][1]);
          acc[i][2] = _mm512_fmadd_ps(both, b[2], acc[i][2]);
          acc[i][3] = _mm512_fmadd_ps(second, b[3], acc[i][3]);
          acc[i][4] = _mm512_fmadd_ps(second, b[4], acc[i][4]);
        }
      }
    }
    const auto last = static_cast<__mmask16>((1u << (2 * out_ - 64)) - 1);
    for (int i = 0; i < R; ++i) {  // full vectors by plain stores: all five masked made the forward ops slower
      for (int v = 0; v < 4; ++v) _mm512_storeu_ps(out + 2 * i * out_ + 16 * v, acc[i][v]);
      _mm512_mask_storeu_ps(out + 2 * i * out_ + 64, last, acc[i][4]);
    }
  }
#endif

  int vectors_ = 0;
  const std::vector<int64_t>& lags_;
  int64_t sign_, in_, out_, panel_, panels_;
  std::vector<T> packed_, zeros_, paired_;
};

// The kernel gradient's share of one utterance: wide[c, j F + f] += sum_t x[t - lags[j], c] dz[t, f] (double, (C,
// k F)), x (T, C) and dz (T, F) the utterance's rows; each (c, f) summed over t in order (in registers on AVX-512
// for float), then added in double.
template <typename T>
void KernelGradient(const T* x, const T* dz, int64_t channels, int64_t nf, const std::vector<int64_t>& lags,
                    int64_t steps, double* wide) {
  const int64_t width = static_cast<int64_t>(lags.size()) * nf;
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    if (nf > 48 && nf <= 80) return KernelGradientTiles<4, 5>(x, dz, channels, nf, lags, steps, wide);
    return KernelGradientTiles<8, 3>(x, dz, channels, nf, lags, steps, wide);
  }
#endif
  std::vector<T> part(channels * nf);
  for (size_t j = 0; j < lags.size(); ++j) {
    std::fill(part.begin(), part.end(), T(0));
    for (int64_t t = lags[j]; t < steps; ++t) {
      const T* __restrict xr = x + (t - lags[j]) * channels;
      const T* __restrict dr = dz + t * nf;
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t f = 0; f < nf; ++f) part[c * nf + f] += xr[c] * dr[f];
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t f = 0; f < nf; ++f) wide[c * width + j * nf + f] += part[c * nf + f];
    }
  }
}

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
    const T* x = x_in.flat<T>().data();
    const TapProduct<T> convolution(ctx->input(1).flat<T>().data(), x_in.dim_size(2), nf, lags, /*gradient=*/false);
    const T* gamma = ctx->input(2).flat<T>().data();
    const T* beta = ctx->input(3).flat<T>().data();
    const T* mask = masked ? mask_in.flat<T>().data() : nullptr;
    const T epsilon = ctx->input(5).scalar<T>()();
    const TensorShape channel({nf}), narrow({batch, steps, nf});
    const T* gate_input = nullptr;
    if (kGate) {
      OP_REQUIRES(ctx, ctx->input(6).shape() == narrow,
                  absl::InvalidArgumentError("FusedBnReluGate: gate_input must be (B, T, F)"));
      gate_input = ctx->input(6).flat<T>().data();
    }
    T *mean, *z, *variance, *inv, *y, *gate = nullptr, *time_mean = nullptr;  // y: the activation, or the gated
    OP_REQUIRES_OK(ctx, kGate ? Allocate<T>(ctx, {{channel, &mean}, {narrow, &z}, {channel, &variance},  // output
                                                  {channel, &inv}, {narrow, &y}, {narrow, &gate},
                                                  {TensorShape({batch, nf}), &time_mean}})
                              : Allocate<T>(ctx, {{channel, &mean}, {narrow, &z}, {channel, &variance},
                                                  {channel, &inv}, {narrow, &y}}));
    const int64_t rows = batch * steps, tile = kTileRows * nf;
    // pass 1, kBlockRows rows at a time (they stay in the L1 cache): z, the convolution; the block's mean and squared
    // deviations from it, merged in double into the running mean and sum of squared deviations (Chan, Golub and
    // LeVeque's pairwise update): the centred variance without a second pass over memory
    std::vector<double> run_mean(nf, 0.0), run_squares(nf, 0.0), block_sum(nf), block_squares(nf);
    std::vector<T> acc(tile, T(0)), block_mean(nf), tiled;
    int64_t seen = 0;
    for (int64_t start = 0; start < rows; start += kBlockRows) {
      const int64_t end = std::min(rows, start + kBlockRows), n = end - start, size = n * nf;
      convolution.Rows(x, start, end, steps, z + start * nf);
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
    // pass 2: y = relu(u), utterance by utterance (its mask); with kGate, gate = sigmoid(y), out = gate_input gate and
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
      if (kGate) {  // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values; then gate_input gate
        Vector<T>(gate + at, size) =
            ConstVector<T>(yt, size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
        Vector<T>(y + at, size) = ConstVector<T>(gate_input + at, size) * ConstVector<T>(gate + at, size);
        const T* __restrict outt = y + at;
        T* __restrict sum = out_sum.data();
        for (int64_t i = 0; i < size; ++i) sum[i] += outt[i];
      }
    });
    close();
  }
};

// dy, z, mean, gamma, beta, inv, mask, keep_scale, x, kernel -> dx, dkernel, dgamma, dbeta, dbias
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
    const Tensor& x_in = ctx->input(8);
    const Tensor& kernel_in = ctx->input(9);
    const std::vector<int64_t>& lags = this->lags_;
    const int64_t taps = static_cast<int64_t>(lags.size()), width = taps * nf;
    OP_REQUIRES(ctx, x_in.dims() == 3 && x_in.dim_size(0) == batch && x_in.dim_size(1) == steps,
                absl::InvalidArgumentError("FusedBnReluBackward: x must be (B, T, C)"));
    const int64_t channels = x_in.dim_size(2);
    OP_REQUIRES(ctx, IsTapKernel(x_in, kernel_in, taps) && kernel_in.dim_size(1) == width,
                absl::InvalidArgumentError("FusedBnReluBackward: kernel must be (C, k F)"));
    const T* x = x_in.flat<T>().data();
    const TensorShape channel({nf});
    T *dx, *dkernel, *dgamma, *dbeta, *dbias;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{x_in.shape(), &dx}, {kernel_in.shape(), &dkernel}, {channel, &dgamma},
                                          {channel, &dbeta}, {channel, &dbias}}));
    const int64_t tile = kTileRows * nf;
    const T count = static_cast<T>(batch * steps);
    Normalise<T> u(mean, gamma, inv, beta, mask, nf);
    // pass 1: sums of the ReLU's gradient g (dy where u > 0) and of g d, d = z - mean
    std::vector<double> sums(2 * nf, 0.0);
    Tiles<T, 2>(batch, steps, nf, &sums, [&](int64_t b) { u.Utterance(b); },
                [&](int64_t at, int64_t size, T* __restrict acc) {
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
    std::vector<T> tiled_r, tiled_d, tiled_0;
    Tile(c_r.data(), nf, &tiled_r);
    Tile(c_d.data(), nf, &tiled_d);
    Tile(c_0.data(), nf, &tiled_0);
    // pass 2, utterance by utterance: dz a tile at a time into an utterance's buffer (it stays in the cache), and its
    // sum (d bias); then the utterance's input gradient and its share of the kernel gradient, from that buffer
    const TapProduct<T> input_gradient(kernel_in.flat<T>().data(), channels, nf, lags, /*gradient=*/true);
    std::vector<T> dz(steps * nf + kDzSlack);
    std::vector<double> sum(nf, 0.0), wide(channels * width, 0.0);
    int64_t current = -1;  // the utterance whose dz the buffer holds
    const auto close = [&]() {
      if (current < 0) return;
      input_gradient.Rows(dz.data(), 0, steps, steps, dx + current * steps * channels);
      KernelGradient(x + current * steps * channels, dz.data(), channels, nf, lags, steps, wide.data());
    };
    const auto utterance = [&](int64_t b) {
      u.Utterance(b);
      close();
      current = b;
    };
    Tiles<T, 1>(batch, steps, nf, &sum, utterance, [&](int64_t at, int64_t size, T* __restrict acc) {
      T* __restrict dzt = dz.data() + (at - current * steps * nf);
      for (int64_t i = 0; i < size; ++i) {
        const T d = u.Centred(z[at + i], i);
        const T g = u.Input(d, i) > T(0) ? dy[at + i] : T(0);
        const T value = g * tiled_r[i] - d * tiled_d[i] - tiled_0[i];
        dzt[i] = value;
        acc[i] += value;
      }
    });
    close();
    for (int64_t f = 0; f < nf; ++f) dbias[f] = static_cast<T>(sum[f]);
    for (int64_t i = 0; i < channels * width; ++i) dkernel[i] = static_cast<T>(wide[i]);
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

// body(first, last) over [0, count) in pieces on the intra-op threads (`cost` per piece, in TensorFlow's units); the
// split never changes a value (body's results depend on its index only). GM-TCNet's unit is one chain of
// operations: with one thread, one core would wait (TIM-Net's two directions run side by side, one thread each).
template <typename Body>
void Split(OpKernelContext* ctx, int64_t count, int64_t cost, Body body) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, count, cost, body);
}

// x, kernel1, bias1, scale1, offset1, kernel2, bias2, scale2, offset2 -> out (FusedTemporalAwareInference)
template <typename T>
struct TemporalAwareInference : OpKernel {
  explicit TemporalAwareInference(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadLags(ctx, &lags_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_in = ctx->input(0);
    const int64_t taps = static_cast<int64_t>(lags_.size());
    OP_REQUIRES(ctx, x_in.dims() == 3,
                absl::InvalidArgumentError("FusedTemporalAwareInference: x must be (B, T, F)"));
    const int64_t batch = x_in.dim_size(0), steps = x_in.dim_size(1), nf = x_in.dim_size(2);
    for (int i : {1, 5}) {  // the gate multiplies x: both convolutions keep its F channels
      OP_REQUIRES(ctx, IsTapKernel(x_in, ctx->input(i), taps) && ctx->input(i).dim_size(1) == taps * nf,
                  absl::InvalidArgumentError("FusedTemporalAwareInference: the kernels must be (F, k F)"));
    }
    for (int i : {2, 3, 4, 6, 7, 8}) {
      OP_REQUIRES(ctx, ctx->input(i).NumElements() == nf,
                  absl::InvalidArgumentError("FusedTemporalAwareInference: a channel vector of the wrong length"));
    }
    const T* x = x_in.flat<T>().data();
    const TapProduct<T> first(ctx->input(1).flat<T>().data(), nf, nf, lags_, /*gradient=*/false);
    const TapProduct<T> second(ctx->input(5).flat<T>().data(), nf, nf, lags_, /*gradient=*/false);
    T* out;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{x_in.shape(), &out}}));
    const int64_t size = steps * nf, tile = kTileRows * nf;
    // v = relu((v + bias) scale + offset) over an utterance's rows, in Keras' order: the convolution's bias, then
    // BatchNorm, then the activation; a tile of rows at a time, with unit k's bias, scale and offset (inputs 2 + 4 k
    // ..) tiled to its length
    std::vector<T> tiled[2][3];
    for (int k = 0; k < 2; ++k) {
      for (int v = 0; v < 3; ++v) Tile(ctx->input(2 + 4 * k + v).flat<T>().data(), nf, &tiled[k][v]);
    }
    const auto normalise = [size, tile, &tiled](T* v, int unit) {
      const T* __restrict bias = tiled[unit][0].data();
      const T* __restrict scale = tiled[unit][1].data();
      const T* __restrict offset = tiled[unit][2].data();
      for (int64_t at = 0; at < size; at += tile) {
        T* __restrict w = v + at;
        for (int64_t i = 0; i < std::min(tile, size - at); ++i) {
          const T u = (w[i] + bias[i]) * scale[i] + offset[i];
          w[i] = u > T(0) ? u : T(0);
        }
      }
    };
    Split(ctx, batch, size * (4 * nf * taps + 40), [&](int64_t begin, int64_t end) {
      std::vector<T> a(size), b(size);
      for (int64_t u = begin; u < end; ++u) {
        first.Rows(x, u * steps, (u + 1) * steps, steps, a.data());  // (T, F) of utterance u
        normalise(a.data(), 0);
        second.Rows(a.data(), 0, steps, steps, b.data());
        normalise(b.data(), 1);
        // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values
        Vector<T>(b.data(), size) =
            ConstVector<T>(b.data(), size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
        const T* __restrict xu = x + u * size;
        T* __restrict o = out + u * size;
        for (int64_t i = 0; i < size; ++i) o[i] = xu[i] * b[i];
      }
    });
  }

 private:
  std::vector<int64_t> lags_;
};

// What the gated-unit ops work on: x (B, T, C), W = 2 n F outputs, n F of them values (and as many gates), F per
// branch.
struct GatedShape {
  int64_t batch, steps, channels, width, half, nf;
};

// A kernel of GM-TCNet's gated unit: x (B, T, C) is input kX, the kernel (C, k W) input kX + 1; `lags` and
// `branches` = n as GatedUnitShapes says.
template <typename T, int kX>
class GatedUnitKernel : public OpKernel {
 public:
  explicit GatedUnitKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadLags(ctx, &lags_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("branches", &branches_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(kX);
    const Tensor& kernel = ctx->input(kX + 1);
    const int64_t taps = static_cast<int64_t>(lags_.size());
    OP_REQUIRES(ctx, x.dims() == 3, absl::InvalidArgumentError("fused gated unit: x must be (B, T, C)"));
    OP_REQUIRES(ctx, IsTapKernel(x, kernel, taps, 2 * branches_),
                absl::InvalidArgumentError("fused gated unit: the kernel must be (C, k W), W = 2 n F"));
    const int64_t width = kernel.dim_size(1) / taps;
    Run(ctx, x, kernel, {x.dim_size(0), x.dim_size(1), x.dim_size(2), width, width / 2, width / 2 / branches_});
  }

 protected:
  virtual void Run(OpKernelContext* ctx, const Tensor& x, const Tensor& kernel, const GatedShape& s) = 0;

  std::vector<int64_t> lags_;
  int64_t branches_;
};

// Rows of FusedGatedUnit's work between its product and its gates: their W values stay in the L1 cache.
constexpr int64_t kGatedRows = 16;

// x, kernel, bias -> out, activations: p = sum_j x[t - lags[j]] W_j + bias, v = relu(p's values), s = sigmoid(relu(
// p's gates)) (TensorFlow's Sigmoid functor), out = (1/n) sum_b v_b s_b, the branches summed in order. A piece's
// activations are worked on in a buffer of its own, in the L1 cache; in training they are then copied to the
// output in one sequential pass, in inference never written. (Worked on in place, in the (B, T, W) output that a step's
// units keep beyond the caches, the product's and the passes' first writes to each line waited on memory;
// docs/speed.md.)
template <typename T>
struct GatedUnit : GatedUnitKernel<T, 0> {
  explicit GatedUnit(OpKernelConstruction* ctx) : GatedUnitKernel<T, 0>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("training", &training_));
  }
  void Run(OpKernelContext* ctx, const Tensor& x_in, const Tensor& kernel, const GatedShape& s) override {
    const int64_t n = this->branches_, rows = s.batch * s.steps, width = s.width, half = s.half, nf = s.nf;
    OP_REQUIRES(ctx, ctx->input(2).NumElements() == width,
                absl::InvalidArgumentError("FusedGatedUnit: the bias must be (W,)"));
    const T* x = x_in.flat<T>().data();
    const T* bias = ctx->input(2).flat<T>().data();
    const TapProduct<T> convolution(kernel.flat<T>().data(), s.channels, width, this->lags_, /*gradient=*/false);
    T *out, *activations;
    const TensorShape kept = training_ ? TensorShape({s.batch, s.steps, width}) : TensorShape({0});
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{TensorShape({s.batch, s.steps, nf}), &out}, {kept, &activations}}));
    const T scale = static_cast<T>(1.0 / static_cast<double>(n));  // Python's 1.0 / branches, cast to T
    const int64_t pieces = (rows + kGatedRows - 1) / kGatedRows;
    Split(ctx, pieces, kGatedRows * width * (2 * s.channels * static_cast<int64_t>(this->lags_.size()) + 20),
          [&](int64_t first, int64_t last) {
      std::vector<T> gate(kGatedRows * half), sigmoid(kGatedRows * half);  // relu(p's gates), s
      std::vector<T> piece(kGatedRows * width);
      for (int64_t at = first; at < last; ++at) {
        const int64_t start = at * kGatedRows, end = std::min(rows, start + kGatedRows), size = (end - start) * half;
        T* __restrict a = piece.data();
        convolution.Rows(x, start, end, s.steps, a);  // p without the bias, for now in the activations
        for (int64_t r = 0; r < end - start; ++r) {
          T* __restrict ar = a + r * width;
          T* __restrict gr = gate.data() + r * half;
          for (int64_t w = 0; w < half; ++w) {
            const T value = ar[w] + bias[w], in = ar[half + w] + bias[half + w];
            ar[w] = value > T(0) ? value : T(0);
            gr[w] = in > T(0) ? in : T(0);
          }
        }
        // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values
        Vector<T>(sigmoid.data(), size) =
            ConstVector<T>(gate.data(), size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
        for (int64_t r = 0; r < end - start; ++r) {
          T* __restrict ar = a + r * width;
          const T* __restrict gr = gate.data() + r * half;
          const T* __restrict sr = sigmoid.data() + r * half;
          T* __restrict outr = out + (start + r) * nf;
          for (int64_t f = 0; f < nf; ++f) outr[f] = ar[f] * sr[f];
          for (int64_t b = 1; b < n; ++b) {
            for (int64_t f = 0; f < nf; ++f) outr[f] += ar[b * nf + f] * sr[b * nf + f];
          }
          for (int64_t f = 0; f < nf; ++f) outr[f] *= scale;
          if (!training_) continue;
          for (int64_t w = 0; w < half; ++w) ar[half + w] = gr[w] > T(0) ? sr[w] : -sr[w];
        }
        if (training_) std::copy(a, a + (end - start) * width, activations + start * width);
      }
    });
  }

 private:
  bool training_;
};

// Utterances whose kernel and bias gradients FusedGatedUnitGrad sums together (in double) before it adds the groups
// in order: a fixed grouping, so that the sums do not depend on how the groups were split between threads.
constexpr int64_t kGroupUtterances = 8;

// How many rows ahead FusedGatedUnitGrad asks for the activations it reads: they come from memory (the whole step's
// are beyond the caches), and the hardware's own prefetching left their pass waiting (docs/speed.md).
constexpr int64_t kPrefetchRows = 16;

// Asks for the `count` values at `values` to be brought into the cache (a hint: it never faults, nor waits).
template <typename T>
void Prefetch(const T* values, int64_t count) {
  const char* bytes = reinterpret_cast<const char*>(values);
  for (int64_t at = 0; at < count * static_cast<int64_t>(sizeof(T)); at += 64) __builtin_prefetch(bytes + at);
}

// dout, activations, x, kernel -> dx, dkernel, dbias, as gated_unit's backward: with d = dout / n on every branch,
// dp's values ReluGrad(d s, v), its gates ReluGrad(SigmoidGrad(s, d v), g); per utterance, dp into a buffer that stays
// in the cache, then from it the input gradient, the utterance's share of the kernel gradient and dp's sum
template <typename T>
struct GatedUnitGrad : GatedUnitKernel<T, 2> {
  using GatedUnitKernel<T, 2>::GatedUnitKernel;
  void Run(OpKernelContext* ctx, const Tensor& x_in, const Tensor& kernel, const GatedShape& s) override {
    const int64_t n = this->branches_, batch = s.batch, steps = s.steps, channels = s.channels, width = s.width;
    const int64_t half = s.half, nf = s.nf;
    OP_REQUIRES(ctx, ctx->input(0).shape() == TensorShape({batch, steps, nf}),
                absl::InvalidArgumentError("FusedGatedUnitGrad: dout must be (B, T, F)"));
    OP_REQUIRES(ctx, ctx->input(1).shape() == TensorShape({batch, steps, width}),
                absl::InvalidArgumentError("FusedGatedUnitGrad: activations must be (B, T, W)"));
    const T* dout = ctx->input(0).flat<T>().data();
    const T* activations = ctx->input(1).flat<T>().data();
    const T* x = x_in.flat<T>().data();
    const std::vector<int64_t>& lags = this->lags_;
    const int64_t wide_size = channels * static_cast<int64_t>(lags.size()) * width;
    const TapProduct<T> input_gradient(kernel.flat<T>().data(), channels, width, lags, /*gradient=*/true);
    T *dx, *dkernel, *dbias;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{x_in.shape(), &dx}, {kernel.shape(), &dkernel},
                                          {TensorShape({width}), &dbias}}));
    const T scale = static_cast<T>(1.0 / static_cast<double>(n));
    const int64_t groups = (batch + kGroupUtterances - 1) / kGroupUtterances;
    std::vector<double> wide(groups * wide_size, 0.0), sums(groups * width, 0.0);  // each group's sums
    Split(ctx, groups, kGroupUtterances * steps * wide_size * 4, [&](int64_t first, int64_t last) {
      std::vector<T> dp(steps * width + kDzSlack), column(width), share(half);
      for (int64_t group = first; group < last; ++group) {
        for (int64_t b = group * kGroupUtterances; b < std::min(batch, (group + 1) * kGroupUtterances); ++b) {
          std::fill(column.begin(), column.end(), T(0));
          for (int64_t t = 0; t < steps; ++t) {
            const T* __restrict d = dout + (b * steps + t) * nf;
            T* __restrict sh = share.data();  // d / n, repeated over the n branches
            for (int64_t k = 0; k < n; ++k) {
              for (int64_t f = 0; f < nf; ++f) sh[k * nf + f] = d[f] * scale;
            }
            const T* __restrict a = activations + (b * steps + t) * width;
            if (b * steps + t + kPrefetchRows < batch * steps) Prefetch(a + kPrefetchRows * width, width);
            T* __restrict row = dp.data() + t * width;
            T* __restrict col = column.data();
            for (int64_t w = 0; w < half; ++w) {
              const T v = a[w], signed_s = a[half + w];
              const T s = std::abs(signed_s);
              const T value = v > T(0) ? sh[w] * s : T(0);
              const T gate = signed_s > T(0) ? sh[w] * v * (s * (T(1) - s)) : T(0);  // SigmoidGrad(s, d v / n)
              row[w] = value;
              row[half + w] = gate;
              col[w] += value;
              col[half + w] += gate;
            }
          }
          input_gradient.Rows(dp.data(), 0, steps, steps, dx + b * steps * channels);
          KernelGradient(x + b * steps * channels, dp.data(), channels, width, lags, steps,
                         wide.data() + group * wide_size);
          for (int64_t w = 0; w < width; ++w) sums[group * width + w] += column[w];
        }
      }
    });
    for (int64_t group = 1; group < groups; ++group) {  // the groups in order
      for (int64_t i = 0; i < wide_size; ++i) wide[i] += wide[group * wide_size + i];
      for (int64_t w = 0; w < width; ++w) sums[w] += sums[group * width + w];
    }
    for (int64_t i = 0; i < wide_size; ++i) dkernel[i] = static_cast<T>(wide[i]);
    for (int64_t w = 0; w < width; ++w) dbias[w] = static_cast<T>(sums[w]);
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
  REGISTER_KERNEL_BUILDER(Name("FusedGatedUnitGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), GatedUnitGrad<T>); \
  REGISTER_KERNEL_BUILDER(Name("FusedTemporalAwareInference").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
                          TemporalAwareInference<T>);

REGISTER(float)
REGISTER(double)

}  // namespace

// The element-wise work of TIM-Net's temporal-aware block and GM-TCNet's gated unit as six TensorFlow ops (float
// and double), each a single-threaded loop over the rows of a (B, T, F) tensor with the F channels innermost. TIM-Net:
// a causal convolution's taps summed from one product of all of them, with their time shifts (zero before the
// start), + BatchNorm (batch statistics) + ReLU + SpatialDropout forward in 3 passes; backward in 2, writing the
// convolution's output gradient once per tap, shifted back by the tap's lag, so that its input and kernel gradients
// are one product each; the sigmoid gate forward and backward in one pass each. GM-TCNet: after its two products,
// the sigmoid gates, the n branches' products and their mean in one pass each way. The same mathematics, in the same
// order, as the TensorFlow path of training_kernels.py (_BatchNormReLU, gated_pair, gated_unit), which stays the
// reference and the fallback; fused_ops.py loads the library that setup.sh builds from this file.
//
// Channel sums over the rows are accumulated in T within blocks of kBlock rows and in double across the blocks:
// a float accumulator over all 12 032 rows would round more than TensorFlow's reduction (BatchNorm's backward
// subtracts nearly equal sums), and a double one per element made the backward pass more than twice as slow (its
// conversions in the inner loop).

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
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

// A causal convolution's k taps enter the BatchNorm ops as one product and leave them as one gradient: with
// lags[j] tap j's lag, z[t] = sum_j x[t - lags[j]] W_j = sum_j P[t - lags[j], tap j's columns] for P = x [W_0 ..
// W_{k-1}] (one (B T, C) @ (C, k F) product instead of k products of shifted copies of x and their sum), and the
// backward op writes DZ[t, tap j] = dz[t + lags[j]], so that d W_j = x^T DZ[tap j] (one product for all taps) and
// d x = DZ [W_0 .. W_{k-1}]^T (one product instead of k, each shifted back in time, and their sum).
//
// Input 0 is (B, T, W): outputs `same` are (B, T, W k) (wide) or (B, T, W / k), k = len(lags); outputs `channel`
// are vectors of the narrow width (W, or W / k).
absl::Status TapShapes(InferenceContext* c, bool wide, std::vector<int> same, std::vector<int> channel) {
  ShapeHandle in, shape;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &in));
  std::vector<int32_t> lags;
  TF_RETURN_IF_ERROR(c->GetAttr("lags", &lags));
  const int64_t taps = static_cast<int64_t>(lags.size());
  tensorflow::shape_inference::DimensionHandle width, channels;
  if (wide) {
    channels = c->Dim(in, 2);
    TF_RETURN_IF_ERROR(c->Multiply(channels, taps, &width));
  } else {
    TF_RETURN_IF_ERROR(c->Divide(c->Dim(in, 2), taps, /*evenly_divisible=*/true, &channels));
    width = channels;
  }
  TF_RETURN_IF_ERROR(c->ReplaceDim(in, 2, width, &shape));
  for (int i : same) c->set_output(i, shape);
  for (int i : channel) c->set_output(i, c->Vector(channels));
  return absl::OkStatus();
}

REGISTER_OP("FusedBnReluForward")
    .Input("products: T")   // (B, T, k F) x @ (C, k F): tap j's product in columns j F .. j F + F - 1
    .Input("gamma: T")      // (F,)
    .Input("beta: T")       // (F,)
    .Input("mask: T")       // (B, 1, F) dropout mask of 0 or 1/(1-rate), or (0,) for none
    .Input("epsilon: T")    // scalar
    .Output("mean: T")      // (F,) of z[t] = sum_j products[t - lags[j], tap j] (0 for t < lags[j]), bias left out
    .Output("d: T")         // (B, T, F) z - mean
    .Output("variance: T")  // (F,) biased
    .Output("inv: T")       // (F,) 1 / sqrt(variance + epsilon)
    .Output("y: T")         // (B, T, F) relu(d gamma inv mask + beta mask)
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return TapShapes(c, /*wide=*/false, {1, 4}, {0, 2, 3}); });

REGISTER_OP("FusedBnReluBackward")
    .Input("dy: T")          // (B, T, F)
    .Input("y: T")           // (B, T, F) the forward output
    .Input("d: T")           // (B, T, F) the centred conv output
    .Input("gamma: T")       // (F,)
    .Input("inv: T")         // (F,)
    .Input("keep_scale: T")  // scalar 1/(1-rate)
    .Output("dz_taps: T")    // (B, T, k F) tap j's columns at t: dz[t + lags[j]] (0 past the end), dz = d loss / d z
    .Output("dgamma: T")     // (F,)
    .Output("dbeta: T")      // (F,)
    .Output("dbias: T")      // (F,) sum of dz
    .Attr("lags: list(int) >= 1")
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return TapShapes(c, /*wide=*/true, {0}, {1, 2, 3}); });

REGISTER_OP("FusedSigmoidGate")
    .Input("x: T")      // (B, T, F)
    .Input("b: T")      // (B, T, F)
    .Output("out: T")   // x sigmoid(b)
    .Output("gate: T")  // sigmoid(b)
    .Attr("T: {float, double}")
    .SetShapeFn([](InferenceContext* c) { return SameShapes(c, {0, 1}); });

REGISTER_OP("FusedSigmoidGateGrad")
    .Input("dout: T")      // (B, T, F)
    .Input("x: T")         // (B, T, F)
    .Input("gate: T")      // (B, T, F)
    .Output("db: T")       // SigmoidGrad(gate, dout x)
    .Output("dx_gate: T")  // dout gate, x's gradient through the product
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

constexpr int64_t kBlock = 16;

// sum[f] += the column sums of body(r, part) over rows 0..rows-1, where body adds row r's values to part[0..nf-1]:
// in T within blocks of kBlock rows, in double across blocks.
template <typename T, typename Body>
void ColumnSums(int64_t rows, int64_t nf, std::vector<double>* sum, Body body) {
  std::vector<T> part(nf);
  for (int64_t start = 0; start < rows; start += kBlock) {
    std::fill(part.begin(), part.end(), T(0));
    const int64_t end = std::min(rows, start + kBlock);
    for (int64_t r = start; r < end; ++r) body(r, part.data());
    for (int64_t f = 0; f < nf; ++f) (*sum)[f] += part[f];
  }
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

// A BatchNorm kernel of a causal convolution's k taps (attr `lags`): input 0 is (B, T, kWide ? k F : F), and
// kVectors inputs of F channels follow from input kFirstVector on.
template <typename T, bool kWide, int kFirstVector, int kVectors>
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
    const int64_t taps = kWide ? static_cast<int64_t>(lags_.size()) : 1;
    OP_REQUIRES(ctx, x.dims() == 3 && x.dim_size(2) % taps == 0,
                absl::InvalidArgumentError(kWide ? "fused tail: expected (B, T, k F) products, k = len(lags)"
                                                 : "fused tail: expected a (B, T, F) tensor"));
    const int64_t nf = x.dim_size(2) / taps;
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

// products, gamma, beta, mask, epsilon -> mean, d, variance, inv, y
template <typename T>
struct BnReluForward : BatchKernel<T, true, 1, 2> {
  using BatchKernel<T, true, 1, 2>::BatchKernel;
  void Run(OpKernelContext* ctx, const Tensor& products_in, int64_t batch, int64_t steps, int64_t nf) override {
    const Tensor& mask_in = ctx->input(3);
    const bool masked = mask_in.NumElements() > 0;
    OP_REQUIRES(ctx, !masked || mask_in.NumElements() == batch * nf,
                absl::InvalidArgumentError("FusedBnReluForward: mask must be (B, 1, F)"));
    const std::vector<int64_t>& lags = this->lags_;
    const int64_t taps = static_cast<int64_t>(lags.size()), width = taps * nf;
    const T* products = products_in.flat<T>().data();
    const T* gamma = ctx->input(1).flat<T>().data();
    const T* beta = ctx->input(2).flat<T>().data();
    const T* mask = masked ? mask_in.flat<T>().data() : nullptr;
    const T epsilon = ctx->input(4).scalar<T>()();
    const TensorShape channel({nf}), narrow({batch, steps, nf});
    T *mean, *d, *variance, *inv, *y;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{channel, &mean}, {narrow, &d}, {channel, &variance}, {channel, &inv},
                                          {narrow, &y}}));
    const int64_t rows = batch * steps;
    const T count = static_cast<T>(rows);
    std::vector<double> sum(nf, 0.0);
    // pass 1: z (into d) as the sum of the taps' shifted products, in tap order as add_n sums them; its mean
    ColumnSums<T>(rows, nf, &sum, [&](int64_t r, T* __restrict part) {
      const int64_t t = r % steps;
      T* __restrict zr = d + r * nf;
      std::fill(zr, zr + nf, T(0));
      for (int64_t j = 0; j < taps; ++j) {
        if (t < lags[j]) continue;  // the tap reads the zeros before the start
        const T* __restrict pr = products + (r - lags[j]) * width + j * nf;
        for (int64_t f = 0; f < nf; ++f) zr[f] += pr[f];
      }
      for (int64_t f = 0; f < nf; ++f) part[f] += zr[f];
    });
    for (int64_t f = 0; f < nf; ++f) {
      mean[f] = static_cast<T>(sum[f]) / count;
      sum[f] = 0.0;
    }
    ColumnSums<T>(rows, nf, &sum, [&](int64_t r, T* __restrict part) {  // pass 2: centre in place; the variance
      T* __restrict dr = d + r * nf;
      for (int64_t f = 0; f < nf; ++f) {
        const T centred = dr[f] - mean[f];
        dr[f] = centred;
        part[f] += centred * centred;
      }
    });
    std::vector<T> scale(nf), offset(nf), row_scale(nf), row_offset(nf);
    for (int64_t f = 0; f < nf; ++f) {
      variance[f] = static_cast<T>(sum[f]) / count;
      inv[f] = T(1) / std::sqrt(variance[f] + epsilon);
      scale[f] = gamma[f] * inv[f];
      offset[f] = beta[f];
    }
    for (int64_t b = 0; b < batch; ++b) {  // pass 3: normalise, offset, dropout, ReLU
      for (int64_t f = 0; f < nf; ++f) {
        row_scale[f] = masked ? scale[f] * mask[b * nf + f] : scale[f];
        row_offset[f] = masked ? offset[f] * mask[b * nf + f] : offset[f];
      }
      for (int64_t t = 0; t < steps; ++t) {
        const int64_t at = (b * steps + t) * nf;
        for (int64_t f = 0; f < nf; ++f) {
          const T u = d[at + f] * row_scale[f] + row_offset[f];
          y[at + f] = u > T(0) ? u : T(0);
        }
      }
    }
  }
};

// dy, y, d, gamma, inv, keep_scale -> dz_taps, dgamma, dbeta, dbias
template <typename T>
struct BnReluBackward : BatchKernel<T, false, 3, 2> {
  using BatchKernel<T, false, 3, 2>::BatchKernel;
  void Run(OpKernelContext* ctx, const Tensor& dy_in, int64_t batch, int64_t steps, int64_t nf) override {
    OP_REQUIRES(ctx, ctx->input(1).shape() == dy_in.shape() && ctx->input(2).shape() == dy_in.shape(),
                absl::InvalidArgumentError("FusedBnReluBackward: dy, y and d must have one shape"));
    const T* dy = dy_in.flat<T>().data();
    const T* y = ctx->input(1).flat<T>().data();
    const T* d = ctx->input(2).flat<T>().data();
    const T* gamma = ctx->input(3).flat<T>().data();
    const T* inv = ctx->input(4).flat<T>().data();
    const T keep = ctx->input(5).scalar<T>()();
    const std::vector<int64_t>& lags = this->lags_;
    const int64_t taps = static_cast<int64_t>(lags.size()), width = taps * nf;  // dz_taps (B, T, k F)
    const TensorShape channel({nf});
    T *dz_taps, *dgamma, *dbeta, *dbias;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{TensorShape({batch, steps, width}), &dz_taps}, {channel, &dgamma},
                                          {channel, &dbeta}, {channel, &dbias}}));
    const int64_t rows = batch * steps;
    const T count = static_cast<T>(rows);
    // pass 1: sums of the ReLU's gradient r and of r d (one (rows, 2F) sum: r in the first F columns)
    std::vector<double> sums(2 * nf, 0.0);
    ColumnSums<T>(rows, 2 * nf, &sums, [&](int64_t r, T* __restrict part) {
      const int64_t at = r * nf;
      for (int64_t f = 0; f < nf; ++f) {
        const T g = y[at + f] > T(0) ? dy[at + f] : T(0);
        part[f] += g;
        part[nf + f] += g * d[at + f];
      }
    });
    // dz = gamma inv (r keep - dbeta / M - xhat dgamma / M), xhat = d inv, as _BatchNormReLU.backward
    std::vector<T> c_r(nf), c_d(nf), c_0(nf);
    for (int64_t f = 0; f < nf; ++f) {
      dbeta[f] = static_cast<T>(sums[f]) * keep;
      dgamma[f] = static_cast<T>(sums[nf + f]) * (keep * inv[f]);
      const T scale = gamma[f] * inv[f];
      c_r[f] = scale * keep;
      c_d[f] = scale * inv[f] * dgamma[f] / count;
      c_0[f] = scale * dbeta[f] / count;
    }
    for (int64_t b = 0; b < batch; ++b) {  // the rows t >= T - lags[j] of tap j read dz past the end: 0
      for (int64_t j = 0; j < taps; ++j) {
        for (int64_t t = std::max<int64_t>(0, steps - lags[j]); t < steps; ++t) {
          std::fill_n(dz_taps + (b * steps + t) * width + j * nf, nf, T(0));
        }
      }
    }
    std::vector<double> sum(nf, 0.0);
    std::vector<T> row(nf);
    // pass 2: dz and its sum (d bias); dz at t goes to row t - lags[j] of each tap j
    ColumnSums<T>(rows, nf, &sum, [&](int64_t r, T* __restrict part) {
      const int64_t at = r * nf, t = r % steps;
      T* __restrict dzr = row.data();
      for (int64_t f = 0; f < nf; ++f) {
        const T g = y[at + f] > T(0) ? dy[at + f] : T(0);
        const T value = g * c_r[f] - d[at + f] * c_d[f] - c_0[f];
        dzr[f] = value;
        part[f] += value;
      }
      for (int64_t j = 0; j < taps; ++j) {
        if (t >= lags[j]) std::copy_n(dzr, nf, dz_taps + (r - lags[j]) * width + j * nf);
      }
    });
    for (int64_t f = 0; f < nf; ++f) dbias[f] = static_cast<T>(sum[f]);
  }
};

// Chunks of this many elements stay in the L1 cache between the two steps of a gate pass.
constexpr int64_t kChunk = 2048;

template <typename T>
using Vector = Eigen::TensorMap<Eigen::Tensor<T, 1, Eigen::RowMajor>>;
template <typename T>
using ConstVector = Eigen::TensorMap<Eigen::Tensor<const T, 1, Eigen::RowMajor>>;

// An element-wise kernel of kInputs inputs shaped alike and two outputs of their shape.
template <typename T, int kInputs>
class ElementwisePair : public OpKernel {
 public:
  explicit ElementwisePair(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& first = ctx->input(0);
    const T* in[kInputs];
    for (int i = 0; i < kInputs; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).shape() == first.shape(),
                  absl::InvalidArgumentError("fused tail: the inputs must have one shape"));
      in[i] = ctx->input(i).flat<T>().data();
    }
    T *out0, *out1;
    OP_REQUIRES_OK(ctx, Allocate<T>(ctx, {{first.shape(), &out0}, {first.shape(), &out1}}));
    Apply(in, out0, out1, first.NumElements());
  }

 protected:
  virtual void Apply(const T* const* in, T* out0, T* out1, int64_t n) = 0;
};

// (x, b) -> (x sigmoid(b), sigmoid(b))
template <typename T>
struct SigmoidGate : ElementwisePair<T, 2> {
  using ElementwisePair<T, 2>::ElementwisePair;
  void Apply(const T* const* in, T* out, T* gate, int64_t n) override {
    for (int64_t start = 0; start < n; start += kChunk) {
      const int64_t size = std::min(kChunk, n - start);
      Vector<T> g(gate + start, size);
      // TensorFlow's Sigmoid kernel: the same Eigen functor, so the same values
      g = ConstVector<T>(in[1] + start, size).unaryExpr(Eigen::internal::scalar_logistic_op<T>());
      Vector<T>(out + start, size) = ConstVector<T>(in[0] + start, size) * g;
    }
  }
};

// (dout, x, gate) -> (SigmoidGrad(gate, dout x), dout gate)
template <typename T>
struct SigmoidGateGrad : ElementwisePair<T, 3> {
  using ElementwisePair<T, 3>::ElementwisePair;
  void Apply(const T* const* in, T* db, T* dx, int64_t n) override {
    const T* __restrict dout = in[0];
    const T* __restrict x = in[1];
    const T* __restrict gate = in[2];
    for (int64_t i = 0; i < n; ++i) {
      const T g = gate[i];
      db[i] = dout[i] * x[i] * (g * (T(1) - g));  // TensorFlow's SigmoidGrad(y=g, dy=dout x)
      dx[i] = dout[i] * g;
    }
  }
};

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
    for (int64_t start = 0; start < rows; start += chunk_rows) {
      const int64_t end = std::min(rows, start + chunk_rows);
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
    for (int64_t r = 0; r < rows; ++r) {
      const T* __restrict doutr = dout + r * nf;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t at = r * width + b * nf;
        for (int64_t f = 0; f < nf; ++f) {
          const T d = doutr[f] * scale;
          const T v = values[at + f], g = gates[at + f];
          dvalues[at + f] = v > T(0) ? d * g : T(0);
          dgates[at + f] = gate_inputs[at + f] > T(0) ? d * v * (g * (T(1) - g)) : T(0);  // SigmoidGrad(g, d v)
        }
      }
    }
  }
};

#define REGISTER(T)                                                                                       \
  REGISTER_KERNEL_BUILDER(Name("FusedBnReluForward").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
                          BnReluForward<T>);                                                               \
  REGISTER_KERNEL_BUILDER(Name("FusedBnReluBackward").Device(DEVICE_CPU).TypeConstraint<T>("T"),           \
                          BnReluBackward<T>);                                                              \
  REGISTER_KERNEL_BUILDER(Name("FusedSigmoidGate").Device(DEVICE_CPU).TypeConstraint<T>("T"), SigmoidGate<T>); \
  REGISTER_KERNEL_BUILDER(Name("FusedSigmoidGateGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),          \
                          SigmoidGateGrad<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("FusedGatedUnit").Device(DEVICE_CPU).TypeConstraint<T>("T"), GatedUnit<T>);   \
  REGISTER_KERNEL_BUILDER(Name("FusedGatedUnitGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), GatedUnitGrad<T>);

REGISTER(float)
REGISTER(double)

}  // namespace

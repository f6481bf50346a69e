"""nn: the building blocks under the networks: causal convolution (causal_conv), the fused training kernels
(training_kernels; the element-wise ops of TIM-Net's block that setup.sh builds from fused_tail.cc: fused_ops), the
layers' argument checks (layer_args, no TensorFlow) and the authors' Keras-2 weight files (legacy_weights). Imports
core only."""

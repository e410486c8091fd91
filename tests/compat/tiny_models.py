"""Tiny user models built in the tests (no downloads): a Keras 3 ``.h5`` and ONNX files whose outputs are known
functions of their input (the mean, the maximum), so a test can tell what the model was fed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def keras_mean_model(path: Path, height: int = 64, width: int = 48, channels: int = 3) -> Path:
    """A Keras model ``(None, H, W, C) -> [mean, 1 - mean]`` saved as legacy HDF5 (``.h5``), like ScanSage's."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    import keras

    inp = keras.Input((height, width, channels), name="scan")
    pooled = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(2, name="scores")
    model = keras.Model(inp, dense(pooled))
    weights = np.zeros((channels, 2), np.float32)
    weights[:, 0], weights[:, 1] = 1.0 / channels, -1.0 / channels
    dense.set_weights([weights, np.array([0.0, 1.0], np.float32)])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def onnx_mean_max_model(path: Path, shape: list, *, two_inputs: bool = False, elem: str = "FLOAT") -> Path:
    """An ONNX model with one input of ``shape`` (ints or names for dynamic axes) and two outputs, ``mean`` and
    ``max`` over all but the batch axis. ``two_inputs`` adds a second input (which user models refuse)."""
    import onnx
    from onnx import TensorProto, helper

    dtype = getattr(TensorProto, elem)
    axes = list(range(1, len(shape)))
    x = helper.make_tensor_value_info("image", dtype, shape)
    inputs = [x]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["mean"], axes=axes, keepdims=0),
        helper.make_node("ReduceMax", ["f"], ["max"], axes=axes, keepdims=0),
    ]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    outputs = [
        helper.make_tensor_value_info("mean", TensorProto.FLOAT, [shape[0]]),
        helper.make_tensor_value_info("max", TensorProto.FLOAT, [shape[0]]),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path

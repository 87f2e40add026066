"""A real KServe v2 (Open Inference Protocol) server for the tests: kserve's ModelServer
serving a small ONNX convolutional net with ResNet's input (FP32 [-1, 3, 224, 224]) under the
name `resnet50`, run by onnxruntime. The net is built here with the `onnx` package (no download):
Conv 3->8 (3x3, stride 2) -> Relu -> GlobalAveragePool -> Flatten -> Gemm 8->1000 -> Softmax.
`resnet50_u8` is the same net behind raw camera bytes: UINT8 [-1, 224, 224, 3] (HWC), cast,
transposed to CHW and scaled by 1/255 inside the graph.

Usage: python server.py --http_port PORT --grpc_port PORT --model_dir DIR
"""
import argparse
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def build_model(path: str, uint8_hwc: bool = False) -> None:
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    fc = numpy_helper.from_array(rng.standard_normal((8, 1000)).astype(np.float32), "fc")
    fcb = numpy_helper.from_array(np.zeros(1000, np.float32), "fcb")
    pre, extra_init = [], []
    conv_in = "input"
    if uint8_hwc:
        scale = numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")
        extra_init = [scale]
        pre = [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Transpose", ["as_float"], ["chw"], perm=[0, 3, 1, 2]),
            helper.make_node("Mul", ["chw", "scale"], ["x"]),
        ]
        conv_in = "x"
    nodes = pre + [
        helper.make_node("Conv", [conv_in, "w", "b"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["g"]),
        helper.make_node("Softmax", ["g"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_resnet_input",
        [
            helper.make_tensor_value_info("input", TensorProto.UINT8, ["N", 224, 224, 3])
            if uint8_hwc
            else helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])],
        [w, b, fc, fcb] + extra_init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model_dir", required=True)
    a, _ = p.parse_known_args()
    os.makedirs(a.model_dir, exist_ok=True)
    paths = {
        "resnet50": (os.path.join(a.model_dir, "model.onnx"), False),
        "resnet50_u8": (os.path.join(a.model_dir, "model_u8.onnx"), True),
    }
    for path, u8 in paths.values():
        if not os.path.exists(path):
            build_model(path, u8)

    # kserve parses its own flags (--http_port, --grpc_port, ...) from sys.argv on import.
    from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

    class OnnxModel(Model):
        def __init__(self, name: str):
            super().__init__(name)
            path, self.u8 = paths[name]
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            self.ready = True

        def get_input_types(self):
            if self.u8:
                return [{"name": "input", "datatype": "UINT8", "shape": [-1, 224, 224, 3]}]
            return [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}]

        def get_output_types(self):
            return [{"name": "output", "datatype": "FP32", "shape": [-1, 1000]}]

        async def predict(self, payload: InferRequest, headers=None, response_headers=None):
            x = payload.inputs[0].as_numpy()
            x = x.astype(np.uint8 if self.u8 else np.float32, copy=False)
            y = self.sess.run(None, {"input": x})[0]
            out = InferOutput(name="output", shape=list(y.shape), datatype="FP32")
            out.set_data_from_numpy(y, binary_data=False)
            return InferResponse(
                model_name=self.name, infer_outputs=[out], response_id=payload.id or "0"
            )

    ModelServer(workers=1).start([OnnxModel(name) for name in paths])


if __name__ == "__main__":
    main()

"""How candidates execute: the split pipeline (`pipeline`), the coders that make what crosses the link (`coders`),
the ONNX export (`onnx_export`) and ONNX Runtime stages (`onnx_runtime`)."""

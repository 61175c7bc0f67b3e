"""Shared CLI arguments: the model spec (`--model --weights --input-shape --input-dtype --leaf-modules
--normalize`) and the data set (`--data`), the same in every command."""

from __future__ import annotations


def add_model_args(p, required: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=required,
                   help="zoo model name (vgg-fmnist, resnet-fmnist) or package.module:factory for your own")
    g.add_argument("--weights", default=None, help="state_dict file for the model (loaded with weights_only=True)")
    g.add_argument("--input-shape", default=None, help="per-sample input shape of your own model: CxHxW, T or TxD")
    g.add_argument("--input-dtype", default="float32", choices=["float32", "int64"],
                   help="dtype of the model input (int64 for token ids / embeddings; default float32)")
    g.add_argument("--leaf-modules", default=None, metavar="package.module:Class[,...]",
                   help="modules torch.fx keeps whole (e.g. blocks with data-dependent control flow)")
    g.add_argument("--normalize", default=None, metavar="MEAN,STD",
                   help="normalize image inputs after scaling to [0, 1]: MEAN,STD or per channel M1,M2,M3,S1,S2,S3")


def add_quantizer_arg(p) -> None:
    """--quantizer: the raw quantizer a command profiles, serves or runs with."""
    p.add_argument("--quantizer", default="auto", metavar="FILE|auto|none",
                   help="raw-quantizer calibration from `planner calibrate-quant --out` (its candidates CUT@qBITS); "
                        "auto: a zoo model's committed one, none for your own model")


def add_data_args(p) -> None:
    p.add_argument("--data", default=None, metavar="PATH",
                   help="image folder (one subfolder per class), .npz with x (and y), or package.module:factory "
                        "returning a Dataset, or photos[:train|:test] (real photos, 224x224 crops); default: "
                        "Fashion-MNIST for the Fashion-MNIST zoo models, photos for efficientnet-lite0")


def model_from_args(args, trained: bool = True):
    """The LoadedModel named by the --model/--weights/--input-shape/--input-dtype/--leaf-modules arguments."""
    from planner.modelspec import load_model

    spec = {k: getattr(args, k, None) for k in ("weights", "input_shape", "input_dtype", "leaf_modules", "normalize")}
    return load_model(args.model, trained=trained, **spec)


def data_from_args(args, loaded, split: str = "test"):
    """The data set named by --data (Fashion-MNIST `split` by default for the zoo), fitted to the model."""
    from planner.datasets import load_data

    return load_data(getattr(args, "data", None), loaded, split=split, root=getattr(args, "data_root", None))

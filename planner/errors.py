"""The project's exception types: one base class, one subclass per concern."""


class PlannerError(Exception):
    """Base class of every error the planner raises on purpose."""


class DataError(PlannerError):
    """A dataset file is missing, truncated or malformed."""


class ZooError(PlannerError):
    """An unknown built-in model or missing weights."""


class PartitionError(PlannerError):
    """A model cannot be traced or split at the requested cut."""


class CodecError(PlannerError):
    """Bytes that do not decode to a feature: truncated, corrupted, hostile or unsupported."""


class CompressError(PlannerError):
    """An autoencoder asked for a cut or bitwidth it was not trained for."""


class ExportError(PlannerError):
    """A model that cannot be exported to ONNX, or an export folder that does not match what runs it."""


class ProfileError(PlannerError):
    """A profile file that is malformed, of a newer schema, or of another model."""


class LinkError(PlannerError):
    """A bad bandwidth/latency string or a trace that cannot deliver."""


class SolveError(PlannerError):
    """Profiles that cannot be planned together (another model, another autoencoder)."""


class MismatchError(PlannerError):
    """Edge and cloud hold different models, weights or autoencoders."""


class RuntimeErrorReply(PlannerError):
    """The cloud server answered a request with an error."""

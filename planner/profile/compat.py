"""Whether an edge and a cloud profile plan together: same model, autoencoder, quantizer, cuts and settings."""

from __future__ import annotations

from planner.errors import SolveError
from planner.profile.schema import Profile


def check_compatible(edge: Profile, cloud: Profile) -> None:
    """Raise SolveError unless the two profiles describe the same model, autoencoder, cuts and bitwidths."""
    for what, a, b in (("model", edge.model, cloud.model), ("autoencoder", edge.autoencoder, cloud.autoencoder)):
        if a != b:
            raise SolveError(f"edge and cloud profiles are of different {what}s: {a!r} ({edge.name}) vs "
                             f"{b!r} ({cloud.name}); profile both devices with the same {what}")
    for side, p, want in (("edge", edge, ("edge", "both")), ("cloud", cloud, ("cloud", "both"))):
        if p.role not in want:
            raise SolveError(f"{p.name} was profiled for the {p.role} role but is given as the {side} profile")
    ids_e, ids_c = [c.id for c in edge.cuts], [c.id for c in cloud.cuts]
    if ids_e != ids_c:
        diff = sorted(set(ids_e) ^ set(ids_c)) or ["(same cuts, different order)"]
        raise SolveError(f"edge and cloud profiles list different cuts ({', '.join(diff)}): "
                         f"{edge.name} vs {cloud.name}")
    if edge.quantizer != cloud.quantizer:
        raise SolveError(f"edge and cloud profiles have different raw quantizers: {edge.quantizer!r} ({edge.name}) "
                         f"vs {cloud.quantizer!r} ({cloud.name}); profile both devices with the same calibration")
    for ce, cc in zip(edge.cuts, cloud.cuts, strict=True):
        se, sc = {(w, b) for w, b, _ in ce.settings()}, {(w, b) for w, b, _ in cc.settings()}
        if se != sc or set(ce.quant) != set(cc.quant):
            raise SolveError(f"cut {ce.id!r} was profiled at other (width, bits) settings on the edge ({edge.name}) "
                             f"than on the cloud ({cloud.name}): {sorted(se, key=str)} + quant {sorted(ce.quant)} vs "
                             f"{sorted(sc, key=str)} + quant {sorted(cc.quant)}")

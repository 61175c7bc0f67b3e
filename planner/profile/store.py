"""Where profile files live and how they are named: one naming rule, one search path, one lookup.

A profile's file name is its `ProfileKey`:

    MODEL_ROLE_WHERE-Nt[-qQUOTA][-xSLOWDOWN][-LLATENT][_KIND].json      e.g. resnet-fmnist_edge_epyc-1t-q0.125.json

(WHERE: the CPU's short name or the device; N: torch threads; QUOTA: the CPU quota the edge ran under;
SLOWDOWN: the edge slowdown the profile is scaled by (`planner profile --edge-slowdown K`); LATENT: the latent width an architecture-only profile assumed, when not the default; KIND: the autoencoder
kind when not the shared one). Architecture-only profiles (`planner profile --arch`) sit in an `arch/` folder.

`find_profiles(model, ...)` looks through the search path, in order:
  1. ./profiles (what `planner profile` writes by default),
  2. the folders in $PLANNER_PROFILES (separated by the OS path separator),
  3. the user's cache folder ($XDG_CACHE_HOME/planner/profiles, else ~/.cache/planner/profiles),
  4. the example profiles shipped inside the package (the repository's profiles/, measured on its CI machine),
and in each folder also its `arch/` subfolder. An earlier folder wins; within a folder a profile of this
machine's CPU wins, then the edge profile with the fewest threads and the cloud profile with the most.
Torch-free.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from planner.config import ARCH_LATENT
from planner.errors import ProfileError
from planner.types import AutoencoderKind, Role

PROFILES_ENV = "PLANNER_PROFILES"
LOCAL_DIR = Path("profiles")
ARCH_SUBDIR = "arch"
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "example_profiles"

_NAME = re.compile(r"^(?P<model>.+)_(?P<role>edge|cloud|both)_(?P<where>.+?)-(?P<threads>\d+)t"
                   r"(?:-q(?P<quota>[0-9.eE+-]+))?(?:-x(?P<slowdown>[0-9.eE+-]+))?(?:-L(?P<latent>[0-9.eE+-]+))?"
                   r"(?:_(?P<kind>[a-z]+))?\.json$")


def model_stem(model: str) -> str:
    """A model id as it appears in file names ('pkg.mod:build' -> 'pkg.mod-build', 'resnet50@3x112x112' ->
    'resnet50_3x112x112')."""
    return model.replace(":", "-").replace("@", "_").replace("/", "-")


@dataclass(frozen=True)
class ProfileKey:
    """What a profile file name says: model, role, where it was measured, threads, quota, latent and kind."""

    model: str  # as in file names (see model_stem)
    role: Role
    where: str  # the CPU's short name (profile.device.cpu_slug) or the device, e.g. 'cuda'
    threads: int
    quota: float | None = None
    latent: float | None = None  # architecture-only profiles: the assumed latent width, when not the default
    kind: AutoencoderKind = AutoencoderKind.SHARED
    slowdown: float | None = None  # the edge slowdown the profile is scaled by (None: as measured)

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "kind", AutoencoderKind(self.kind))
        if self.latent is not None and math.isclose(self.latent, ARCH_LATENT):
            object.__setattr__(self, "latent", None)
        if self.slowdown is not None and math.isclose(self.slowdown, 1.0):
            object.__setattr__(self, "slowdown", None)

    @property
    def filename(self) -> str:
        quota = f"-q{self.quota:g}" if self.quota else ""
        slowdown = f"-x{self.slowdown:g}" if self.slowdown is not None else ""
        latent = f"-L{self.latent:g}" if self.latent is not None else ""
        kind = "" if self.kind == AutoencoderKind.SHARED else f"_{self.kind.value}"
        return (f"{model_stem(self.model)}_{self.role.value}_{self.where}-{self.threads}t{quota}{slowdown}{latent}"
                f"{kind}.json")

    @classmethod
    def parse(cls, filename: str) -> ProfileKey | None:
        """The key of a file name that follows the rule, else None."""
        m = _NAME.match(filename)
        if not m:
            return None
        try:
            kind = AutoencoderKind(m["kind"] or AutoencoderKind.SHARED)
            return cls(m["model"], Role(m["role"]), m["where"], int(m["threads"]), _float(m["quota"]),
                       _float(m["latent"]), kind, _float(m["slowdown"]))
        except ValueError:
            return None

    @classmethod
    def of(cls, model: str, role: Role | str, threads: int, *, quota: float | None = None, device: str = "cpu",
           latent: float | None = None, kind: AutoencoderKind | str = AutoencoderKind.SHARED,
           slowdown: float | None = None) -> ProfileKey:
        """The key of a profile measured here now (WHERE: this machine's CPU, or the device when not the CPU)."""
        from planner.profile.device import cpu_slug

        where = cpu_slug() if device == "cpu" else device.replace(":", "")
        if kind == AutoencoderKind.NONE:
            kind = AutoencoderKind.SHARED  # raw-only profiles carry no kind in their name, as before
        return cls(model, Role(role), where, int(threads), quota or None, latent, AutoencoderKind(kind), slowdown)

    def path(self, root: str | Path = LOCAL_DIR, arch: bool = False) -> Path:
        """Where `planner profile` writes it: ROOT/NAME, or ROOT/arch/NAME for an architecture-only profile."""
        root = Path(root)
        return (root / ARCH_SUBDIR if arch else root) / self.filename

    def with_role(self, role: Role | str) -> ProfileKey:
        return replace(self, role=Role(role))


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def user_dir() -> Path:
    """The user's own profile folder: $XDG_CACHE_HOME/planner/profiles, else ~/.cache/planner/profiles."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "planner" / "profiles"


def search_path(dirs: list[str | Path] | None = None) -> list[Path]:
    """The folders profiles are looked for in (see the module docstring); `dirs` replaces the whole path."""
    if dirs is not None:
        return [Path(d) for d in dirs]
    env = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for d in (LOCAL_DIR, *env, user_dir(), EXAMPLES_DIR):
        resolved = d.resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def _found(model: str, kind: AutoencoderKind, dirs: list[Path]) -> list[tuple[int, Path, ProfileKey]]:
    stem = model_stem(model)
    hits = []
    for rank, d in enumerate(dirs):
        for folder in (d, d / ARCH_SUBDIR):
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                key = ProfileKey.parse(path.name)
                if key is not None and key.model == stem and key.kind == kind:
                    hits.append((rank, path, key))
    return hits


def _same(a: float | None, b: float | None) -> bool:
    return a == b if a is None or b is None else math.isclose(a, b, rel_tol=1e-9)


def find_profile(model: str, role: Role | str, *, quota: float | None = None,
                 autoencoder: AutoencoderKind | str = AutoencoderKind.SHARED,
                 dirs: list[str | Path] | None = None) -> Path:
    """The best profile file of `model` for `role` ('edge' or 'cloud') on the search path (see the module)."""
    from planner.profile.device import cpu_slug

    role, kind = Role(role), AutoencoderKind(autoencoder)
    if kind == AutoencoderKind.NONE:
        kind = AutoencoderKind.SHARED
    search = search_path(dirs)
    hits = _found(model, kind, search)
    want_quota = (quota or None) if role == Role.EDGE else None
    usable = [h for h in hits if h[2].role.covers(role) and _same(h[2].quota, want_quota) and h[2].slowdown is None]
    if not usable:
        q = f"-q{quota:g}" if quota and role == Role.EDGE else ""
        suffix = "" if kind == AutoencoderKind.SHARED else f"_{kind.value}"
        have = sorted({p.name for _, p, _ in hits}) or ["none"]
        flags = f" --cpu-quota {quota:g}" if q else ""
        raise ProfileError(f"no {role.value} profile for model {model!r} ({kind.value} autoencoder"
                           f"{f', CPU quota {quota:g}' if q else ''}) in {', '.join(map(str, search))}: expected "
                           f"{model_stem(model)}_{role.value}_<cpu>-<N>t{q}{suffix}.json (found for this model: "
                           f"{', '.join(have)}); measure it with `planner profile --model {model} --role "
                           f"{role.value}{flags}`, pass the file explicitly, or add its folder to ${PROFILES_ENV}")
    here = cpu_slug()
    sign = 1 if role == Role.EDGE else -1  # the edge: fewest threads; the cloud: most

    def preference(hit: tuple[int, Path, ProfileKey]) -> tuple:
        rank, path, key = hit
        return rank, key.where != here, key.role != role, sign * key.threads, path.name

    return min(usable, key=preference)[1]


def find_profiles(model: str, *, quota: float | None = None, autoencoder: AutoencoderKind | str = AutoencoderKind.SHARED,
              dirs: list[str | Path] | None = None) -> tuple[Path, Path]:
    """The (edge, cloud) profile files of `model`: the edge one measured under `quota` (None: no quota)."""
    return (find_profile(model, Role.EDGE, quota=quota, autoencoder=autoencoder, dirs=dirs),
            find_profile(model, Role.CLOUD, autoencoder=autoencoder, dirs=dirs))


def load_pair(model: str, **kwargs):
    """`find_profiles(model, ...)`, loaded as (edge, cloud) Profiles."""
    from planner.profile.schema import Profile

    edge, cloud = find_profiles(model, **kwargs)
    return Profile.load(edge), Profile.load(cloud)

"""The frozen, versioned reward spec and the one factory that turns it into a user simulator. Pure: no Django.

Every number about elicitation — simulated answers stored with a candidate, the GRPO reward, auto-eval, the
audit — is computed under a `RewardSpec`: matcher, thresholds, K, weights, simulator. Runs, generation jobs and
auto-evaluations store the spec they used; two numbers are comparable only under equal specs (`digest`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .matching import LexicalMatcher, Matcher
from .simulator import LLMSimulator, SlotSimulator, UserSimulator

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from .backends import Backend

REWARD_SPEC_VERSION = "reward-v2"
MATCHERS = ("embedding", "lexical", "llm")
SIMULATOR_KINDS = ("slot", "llm")


@dataclass(frozen=True)
class RewardWeights:
    redundant: float = 0.5
    duplicate: float = 0.25
    length: float = 0.1
    format: float = 0.1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RewardWeights:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown reward weight(s): {', '.join(sorted(unknown))}")
        return cls(**data)


NO_LIMIT = 2.0  # scores lie in [-1, 1]: a spread or margin of 2 never excludes anything


@dataclass(frozen=True)
class MatcherDefaults:
    threshold: float
    redundant_threshold: float
    spread: float
    given_margin: float


# Tuned on the elicitation benchmark's DEV split only (`manage.py reward_audit --split dev`); see
# docs/generation.md for the figures on DEV and TEST. Changing one is a new REWARD_SPEC_VERSION.
MATCHER_DEFAULTS: dict[str, MatcherDefaults] = {
    # embedding: a probability from the slot model (training/slotscore.py); redundant_threshold is a cosine.
    "embedding": MatcherDefaults(threshold=0.25, redundant_threshold=0.4, spread=NO_LIMIT, given_margin=NO_LIMIT),
    "lexical": MatcherDefaults(threshold=0.3, redundant_threshold=0.5, spread=NO_LIMIT, given_margin=NO_LIMIT),
    "llm": MatcherDefaults(threshold=0.5, redundant_threshold=0.5, spread=NO_LIMIT, given_margin=0.0),
}


@dataclass(frozen=True)
class RewardSpec:
    """Everything that decides the elicitation reward of a question set. Frozen and versioned: two numbers
    are comparable only when they were computed under equal specs (`digest`)."""

    matcher: str = "embedding"
    # None: the matcher's tuned default (filled in on construction). See `SlotSimulator` for their meaning.
    threshold: float | None = None
    redundant_threshold: float | None = None
    spread: float | None = None
    given_margin: float | None = None
    # 6, not 5: a task hides up to six facts (the benchmark's maximum), and with K below that a perfect
    # question set — one targeted question per fact — loses its format bonus and pays the length penalty.
    k: int = 6
    weights: RewardWeights = field(default_factory=RewardWeights)
    simulator: str = "slot"  # slot: the matcher answers; llm: a model plays the user
    catch_all_reveals: bool = False
    judge_system: str = ""  # the System whose model judges (matcher "llm") or plays the user (simulator "llm")
    value_recall: float = 0.3  # outline coverage: share of a value's key words needed
    version: str = REWARD_SPEC_VERSION

    def __post_init__(self) -> None:
        if self.matcher not in MATCHERS:
            raise ValueError(f"unknown matcher {self.matcher!r} (choose from {', '.join(MATCHERS)})")
        if self.simulator not in SIMULATOR_KINDS:
            raise ValueError(f"unknown simulator {self.simulator!r} (choose from {', '.join(SIMULATOR_KINDS)})")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"k (max questions) must be a positive integer, not {self.k!r}")
        if (self.matcher == "llm" or self.simulator == "llm") and not self.judge_system:
            raise ValueError("an llm matcher or simulator needs judge_system (the System that plays it)")
        defaults = MATCHER_DEFAULTS[self.matcher]
        for name in ("threshold", "redundant_threshold", "spread", "given_margin"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, getattr(defaults, name))
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{name} must be a number, not {value!r}")
        if isinstance(self.weights, Mapping):
            object.__setattr__(self, "weights", RewardWeights.from_dict(self.weights))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        raw = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]

    def label(self) -> str:
        return f"{self.version} {self.matcher}@{self.threshold:g} K={self.k} #{self.digest}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RewardSpec:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown reward spec field(s): {', '.join(sorted(unknown))}")
        if "weights" in data:
            data["weights"] = RewardWeights.from_dict(data["weights"])
        return cls(**data)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> RewardSpec:
        """This spec with some fields changed; a changed matcher takes that matcher's defaults."""
        overrides = dict(overrides or {})
        if not overrides:
            return self
        base = self.as_dict()
        if overrides.get("matcher", self.matcher) != self.matcher:
            for name in ("threshold", "redundant_threshold", "spread", "given_margin"):
                base[name] = None
        if "weights" in overrides:
            overrides["weights"] = {**base["weights"], **dict(overrides["weights"] or {})}
        return RewardSpec.from_dict({**base, **overrides})

    def differences(self, other: RewardSpec) -> list[tuple[str, Any, Any]]:
        """(field, this spec's value, other's value) for every field that differs; weights per weight."""
        mine, theirs = _flat(self.as_dict()), _flat(other.as_dict())
        return [
            (k, mine.get(k), theirs.get(k)) for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)
        ]


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


DEFAULT_SPEC = RewardSpec()


def default_spec() -> RewardSpec:
    """The evaluation spec: what auto-eval and generation use, and what training uses unless overridden."""
    return DEFAULT_SPEC


def make_matcher(
    spec: RewardSpec, *, judge_backend: Backend | None = None, cache: MutableMapping[str, bool] | None = None
) -> Matcher:
    if spec.matcher == "embedding":
        from .embedding import EmbeddingMatcher

        return EmbeddingMatcher(threshold=float(spec.threshold))
    if spec.matcher == "lexical":
        return LexicalMatcher(threshold=float(spec.threshold))
    if judge_backend is None:
        raise ValueError("the llm matcher needs the judge system's backend")
    from .judge import LLMJudgeMatcher

    return LLMJudgeMatcher(judge_backend, cache=cache)


def build_simulator(
    spec: RewardSpec,
    *,
    judge_backend: Backend | None = None,
    cache: MutableMapping[str, bool] | None = None,
    llm_params: Mapping[str, Any] | None = None,
) -> UserSimulator:
    """The one simulator factory: generation, training rewards, auto-eval and the audit all call it."""
    matcher = make_matcher(spec, judge_backend=judge_backend, cache=cache)
    if spec.simulator == "llm":
        if judge_backend is None:
            raise ValueError("the llm simulator needs the judge system's backend")
        return LLMSimulator(judge_backend, dict(llm_params or {}), matcher=matcher)
    scorer: Any = matcher
    if spec.matcher == "embedding":
        from .slotscore import EmbeddingSlotScorer

        scorer = EmbeddingSlotScorer(threshold=float(spec.threshold))
    return SlotSimulator(
        scorer,
        redundant_threshold=spec.redundant_threshold,
        spread=float(spec.spread),
        given_margin=float(spec.given_margin),
        catch_all_reveals=spec.catch_all_reveals,
    )


_LEGACY_SIMULATORS = {"lexical": "lexical", "embedding": "embedding"}


def spec_overrides_from_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's reward-spec overrides: `spec = {...}`, plus the older `weights` (with `max_questions`) and
    `simulator = "lexical" | "embedding"` keys, which meant a matcher."""
    config = dict(config or {})
    overrides = dict(config.get("spec") or {})
    weights = dict(config.get("weights") or {})
    if "max_questions" in weights:
        overrides.setdefault("k", weights.pop("max_questions"))
    if weights:
        overrides.setdefault("weights", weights)
    if "simulator" in config:
        overrides.setdefault("matcher", _LEGACY_SIMULATORS.get(config["simulator"], config["simulator"]))
    return overrides


def spec_for_run(config: Mapping[str, Any] | None, evaluation: RewardSpec | None = None) -> RewardSpec:
    """The spec a training run rewards with: the evaluation spec unless the run's config overrides it."""
    return (evaluation or DEFAULT_SPEC).with_overrides(spec_overrides_from_config(config))

"""The train section of params.yaml: the network, its head, the optimiser and the MLflow run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mtt.core.dataset import feature_set_names
from mtt.core.params import Section, increasing_quantiles


class TrainParams(Section):
    """Keras regression of m_tt; every run logged to MLflow."""

    preset: str = Field("none", description="name of an overlay in `train_presets` applied on top of this section")
    feature_set: str = Field("extended", description="inputs, by name: seed, lowlevel, extended, objects, ellipse, "
                             "or sets joined by '+' (objects+ellipse)")
    architecture: Literal["dense", "set"] = Field(
        "dense", description="dense: the Dense stack on the flat features; set: a transformer over the objects "
        "(leptons, jets, MET as tokens) before the Dense stack (needs the objects set)")
    max_jets: int = Field(0, ge=0, description="jet slots of the objects set read, the leading ones by pT; 0 = all "
                          "that prepare wrote (prepare.max_jets)")
    set_dim: int = Field(64, ge=4, le=1024, description="set: width of a token (the attention model dimension)")
    set_layers: int = Field(2, ge=0, le=16, description="set: attention blocks; 0 = Deep Sets (per-object "
                            "embedding and masked mean only)")
    set_heads: int = Field(4, ge=1, le=64, description="set: attention heads; set_dim must be a multiple of it")
    scaler: Literal["minmax", "standard", "robust", "quantile"] = Field(
        "standard", description="fitted on train by validate (data/reference), checked there, built into the model")
    log_features: bool = Field(False, description="log1p of momentum-like features (pT, E, masses, HT, MET)")
    target_transform: Literal["none", "log", "standardize"] = Field("standardize", description="regress this")
    augment: list[Literal["phi_rotation", "z_reflection"]] = Field(
        [], description="training-time augmentation by the collision's symmetries: each event turned about the beam "
        "by a random angle (phi_rotation) and mirrored in z half the time (z_reflection); m_tt is unchanged")
    ensemble: int = Field(1, ge=1, le=32, description="independently initialised networks trained side by side and "
                          "combined (an MDN: the mixture of their mixtures; else their mean)")
    depth: int = Field(4, ge=1, le=64)
    width: int = Field(100, ge=1, le=8192)
    activation: Literal["relu", "elu", "gelu", "tanh", "swish"] = "relu"
    batch_norm: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)
    residual: bool = False
    head: Literal["point", "mdn", "quantile", "flow"] = Field(
        "point", description="point: one value; mdn: a Gaussian mixture over m_tt; quantile: quantiles; flow: a "
        "normalizing flow over the two neutrinos' momenta (trained on the simulated truth neutrinos), m_tt and any "
        "other observable from posterior draws")
    loss: Literal["mse", "mae", "huber", "log_cosh"] = Field("mse", description="point head only")
    mdn_components: int = Field(5, ge=1, le=64)
    quantiles: list[float] = Field([0.16, 0.5, 0.84], min_length=1, description="quantile head: strictly "
                                   "increasing, each strictly between 0 and 1")
    flow_context: int = Field(32, ge=1, le=1024, description="flow: width of the event embedding the flow is "
                              "conditioned on")
    flow_layers: int = Field(6, ge=2, le=32, description="flow: rational-quadratic spline coupling layers")
    flow_bins: int = Field(8, ge=2, le=64, description="flow: spline pieces per coordinate")
    flow_hidden: int = Field(64, ge=4, le=4096, description="flow: width of each coupling's conditioner network")
    flow_mtt_correction: bool = Field(True, description="flow: also model log(m_tt / m_reco), m_reco from the "
                                      "reconstructed objects plus the neutrinos: m_tt draws then carry the jets' "
                                      "response too (false: the six neutrino momenta only)")
    flow_samples: int = Field(32, ge=1, le=4096, description="flow: posterior draws per event behind the saved "
                              "model's point estimate (the median); evaluate draws evaluate.flow_samples")
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    schedule: Literal["constant", "reduce_on_plateau", "cosine", "exponential"] = "constant"
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up before the cosine schedule (fewer than epochs)")
    batch_size: int = Field(256, ge=1, le=2**20)
    epochs: int = Field(20, ge=1, le=10_000)
    early_stopping: int = Field(0, ge=0, description="patience in epochs on val_loss; 0 = off")
    clipnorm: float = Field(0.0, ge=0, description="gradient clipping by global norm; 0 = off")
    sample_weights: Literal["none", "flat"] = Field("none", description="flat: inverse true m_tt density, clipped")
    flat_clip: float = Field(10.0, gt=1, description="largest flat weight relative to the median weight")
    n_train: int = Field(0, ge=0, description="deterministic subset of the train split; 0 = all (more than the "
                         "split holds is refused before training)")
    input: Literal["auto", "memory", "stream"] = Field(
        "auto", description="memory: numpy arrays; stream: tf.data from Parquet row groups; auto: stream if large")
    strategy: Literal["default", "mirrored", "multi_worker"] = Field(
        "default", description="tf.distribute: one device, all local GPUs, or the cluster in TF_CONFIG")
    resume: bool = Field(False, description="continue an interrupted run from its last epoch, in the same MLflow run")
    seed: int = Field(42, ge=0, lt=2**31)
    experiment: str = Field("mtt", min_length=1, description="MLflow experiment")
    registered_model: str = Field(
        "mtt-mtt", description="MLflow registered model: each run's model becomes a new version of it with alias "
        "`candidate` (`mtt promote` moves `champion`); empty = do not register")
    promote_metric: str = Field(
        "final/val_resolution", min_length=1, description="run metric `mtt promote` compares, lower is better "
        "(recorded on each registered version); the val resolution at the best epoch keeps the test split honest")

    @field_validator("feature_set")
    @classmethod
    def _known_sets(cls, value: str) -> str:
        feature_set_names(value)  # a ValueError naming the known sets
        return value

    @field_validator("architecture")
    @classmethod
    def _set_reads_objects(cls, value: str, info: ValidationInfo) -> str:
        feature_set = info.data.get("feature_set")  # absent when it failed its own check
        if value == "set" and feature_set is not None and "objects" not in feature_set_names(feature_set):
            raise ValueError(f"the set architecture reads leptons, jets and MET as objects, but feature_set "
                             f"{feature_set!r} has no `objects` set: use objects or objects+<other sets>")
        return value

    @field_validator("set_heads")
    @classmethod
    def _heads_divide_the_width(cls, value: int, info: ValidationInfo) -> int:
        set_dim = info.data.get("set_dim")
        if set_dim is not None and set_dim % value:
            raise ValueError(f"set_dim ({set_dim}) must be a multiple of set_heads ({value}): each head gets "
                             "set_dim / set_heads dimensions")
        return value

    _quantiles = field_validator("quantiles")(increasing_quantiles)

    @model_validator(mode="after")
    def _flow_alone(self) -> TrainParams:
        if self.head == "flow" and (self.ensemble > 1 or self.augment or self.input == "stream"):
            raise ValueError(f"head: flow trains one network on events in memory, unchanged (ensemble "
                             f"{self.ensemble}, augment {self.augment}, input {self.input!r}): set ensemble: 1, "
                             "augment: [] and input: auto or memory (the truth neutrinos would need turning with the "
                             "event)")
        return self

    @model_validator(mode="after")
    def _warmup_before_the_end(self) -> TrainParams:
        if self.schedule == "cosine" and self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs: {self.warmup_epochs} must be below epochs ({self.epochs}): the cosine "
                             "schedule would never start its decay")
        return self



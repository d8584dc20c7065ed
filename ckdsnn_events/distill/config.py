"""The typed configuration of a training run (teacher training or distillation).

Sections, as in the TOML recipes of ``pipelines/recipes/``: ``[data]`` (see
:class:`ckdsnn_events.data.loaders.DataConfig`), ``[model]``, ``[loss]``, ``[optim]`` (the model
being trained), ``[teacher_optim]`` (used when ``distill`` has to train its teacher first), and
top-level ``seed``, ``device``, ``runs_root``, ``run_dir``, ``teacher_checkpoint``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from ckdsnn_events.data.loaders import DataConfig
from ckdsnn_events.distill.presets import PRESETS
from ckdsnn_events.errors import UserError


TEACHER_MODES = ("eval", "train")


@dataclass
class ModelConfig:
    """Architectures by name (:data:`ckdsnn_events.models.STUDENTS`), their block options, the student's neuron."""

    teacher: str = "resnet20"
    student: str = "resnet20"
    teacher_width: int | None = None  # channels of the first stage; None: the architecture's own
    student_width: int | None = None
    decay: float = 0.5  # LIF membrane decay per step
    threshold: float = 1.0
    reset: Literal["hard", "subtract"] = "hard"
    surrogate_width: float = 1.0  # triangle surrogate gamma
    # the rest of the neuron (models/neuron_params.py): "if" = no leak (decay ignored); surrogate_alpha
    # of atan/sigmoid, None = SpikingJelly's 2.0/4.0; detach_reset as SpikingJelly's
    neuron: Literal["lif", "if"] = "lif"
    surrogate: Literal["triangle", "atan", "sigmoid"] = "triangle"
    surrogate_alpha: float | None = None
    detach_reset: bool = False
    neuron_backend: Literal["fused", "norse"] = "fused"  # code that runs the neurons (models/backends.py)
    # block options, each described in ckdsnn_events/models/arch.py; the reference preset sets the
    # released CKDSNN code's: "relu", "projector", "avgpool"
    last_block: str = "lif"  # student: output neuron of the very last block, "lif" | "relu"
    head: str = "linear"  # student: "linear" (fc per step, mean over T) | "projector" (mean over T, fc2 -> fc1)
    downsample: str | None = None  # teacher and student shortcut: "conv" | "avgpool"; None: the architecture's own
    # start the student from the teacher's conv/BN/fc weights (same architecture and width) instead of
    # from scratch: an ANN-to-SNN initialisation, not part of CKDSNN; it skips the long plateau a deep
    # spiking ResNet sits on at random initialisation, which matters for short CPU runs
    init_from_teacher: bool = False
    connect: Literal["ADD", "AND", "IAND"] = "ADD"  # SEW-ResNet students' connect function
    # the teacher's weights instead of training it: a torchvision state-dict file, or "imagenet"
    # (torchvision's ImageNet-1K weights of a tv-resnet teacher; needs the network once)
    teacher_weights: str | None = None


@dataclass
class LossConfig:
    """Weights and temperatures of CE + beta*SAMD + gamma*NLD (+ alpha_kd*KD + alpha_feat*feature KD)."""

    beta: float = 1.0
    gamma: float = 1.0
    alpha_kd: float = 0.0
    alpha_feat: float = 0.0
    samd_temperature: float = 2.0
    nld_temperature: float = 2.0
    kd_temperature: float = 2.0
    noise_weight: float = 0.1
    samd_variant: Literal["paper", "reference"] = "paper"
    nld_variant: Literal["paper", "reference"] = "paper"
    samd_target_class: Literal["label", "predicted"] | None = None
    # the SAMD ablation options (see ckdsnn_events.distill.samd): scaling before the distance,
    # normalisation before the scaling (None: the variant's own), stage (None: the last), student map
    samd_scaling: Literal["softmax", "none", "zscore", "l2"] = "softmax"
    samd_norm: Literal["none", "batch-minmax", "sample-minmax"] | None = None
    samd_stage: int | None = None
    samd_map: Literal["sam", "gradcam"] = "sam"
    nld_noise: Literal["adaptive", "fixed", "none"] = "adaptive"  # the noise ablation of NLD
    nld_noise_std: float = 1.0  # std of the "fixed" noise, logit units
    # BN of the teacher while it teaches: "eval" (running statistics: a frozen teacher) or "train"
    # (batch statistics, as the released code, whose Lightning module puts the teacher in train mode
    # with the student); the teacher's weights never train either way
    teacher_mode: str = "eval"

    def loss_kwargs(self) -> dict:
        """The keyword arguments of :class:`~ckdsnn_events.distill.losses.DistillationLoss`."""
        return {k: v for k, v in asdict(self).items() if k != "teacher_mode"}


@dataclass
class OptimConfig:
    """SGD with momentum, cosine schedule after an optional linear warm-up (per step)."""

    epochs: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    # "32" or "bf16-mixed" (distill/precision.py); auto: bf16-mixed on CUDA that supports it, else 32;
    # fp32 / bf16 are the earlier names; 32 unquoted is what --set optim.precision=32 gives
    precision: Literal["auto", "32", "bf16-mixed", "fp32", "bf16", 32] = "auto"
    grad_clip: float | None = None
    # training samples over which BatchNorm's running statistics are recomputed for the current
    # weights before every evaluation (see ckdsnn_events.distill.bn_stats); 0: the running averages
    bn_stats_samples: int = 0


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    teacher_optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU; or "cpu", "cuda", "cuda:1"
    runs_root: str = "runs"
    run_dir: str | None = None  # default: <runs_root>/<dataset>-<stage>-<architecture>-seed<seed>
    teacher_checkpoint: str | None = None
    preset: str | None = None  # "paper" | "reference": settings applied under the CLI's (see distill/presets.py)

    def validate(self) -> None:
        """Raise UserError naming the first invalid setting."""
        for name, optim in (("optim", self.optim), ("teacher_optim", self.teacher_optim)):
            if optim.epochs < 1:
                raise UserError(f"{name}.epochs must be at least 1, got {optim.epochs}.")
            if not 0 < optim.lr < float("inf"):
                raise UserError(f"{name}.lr must be positive and finite, got {optim.lr}.")
            if not 0 <= optim.momentum < 1:
                raise UserError(f"{name}.momentum must be in [0, 1), got {optim.momentum}.")
            if not 0 <= optim.weight_decay < float("inf"):
                raise UserError(f"{name}.weight_decay must be >= 0, got {optim.weight_decay}.")
            if not 0 <= optim.warmup_epochs < optim.epochs:
                raise UserError(f"{name}.warmup_epochs must be in [0, epochs), got {optim.warmup_epochs}.")
            if optim.bn_stats_samples < 0:
                raise UserError(f"{name}.bn_stats_samples must be >= 0 (0: off), got {optim.bn_stats_samples}.")
            if optim.grad_clip is not None and not 0 < optim.grad_clip < float("inf"):
                raise UserError(f"{name}.grad_clip must be positive, got {optim.grad_clip}.")
        from ckdsnn_events.distill.losses import DistillationLoss
        from ckdsnn_events.distill.precision import check_precision
        from ckdsnn_events.models import STUDENTS, TEACHERS, ArchOptions
        from ckdsnn_events.models.arch import check_choice

        check_precision(self.device, self.optim.precision, self.teacher_optim.precision)

        for name, value, known in (("teacher", self.model.teacher, TEACHERS), ("student", self.model.student, STUDENTS)):
            if value not in known:
                raise UserError(f"model.{name} '{value}' is not a known architecture; choose one of "
                                f"{', '.join(sorted(known))}.")
        # the loss checks its own weights, temperatures and variant names; fail before any training
        DistillationLoss(**self.loss.loss_kwargs(), student_channels=1, teacher_channels=1)
        check_choice("loss.teacher_mode", self.loss.teacher_mode, TEACHER_MODES)
        check_choice("preset", self.preset, tuple(PRESETS) + (None,))
        ArchOptions(self.model.last_block, self.model.head, self.model.downsample)  # UserError naming the key
        if self.model.init_from_teacher and self.model.head != "linear":
            raise UserError(f"model.init_from_teacher copies the teacher's linear classifier, which model.head="
                            f"'{self.model.head}' does not have; use model.head=linear or drop init_from_teacher.")
        if self.model.init_from_teacher and (self.model.teacher != self.model.student
                                             or self.model.teacher_width != self.model.student_width):
            raise UserError("model.init_from_teacher needs the same teacher and student architecture and width "
                            f"(got {self.model.teacher}/{self.model.teacher_width} and "
                            f"{self.model.student}/{self.model.student_width}).")
        from ckdsnn_events.models import neuron_options

        neuron_options(self.model)  # every neuron option, and whether the chosen backend has it
        for name in ("teacher_width", "student_width"):
            width = getattr(self.model, name)
            if width is not None and width < 1:
                raise UserError(f"model.{name} must be at least 1, got {width}.")

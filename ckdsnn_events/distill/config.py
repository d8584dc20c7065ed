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
from ckdsnn_events.errors import UserError


@dataclass
class ModelConfig:
    """Architectures by name (``resnet18``, ``resnet19``, ``resnet20``) and the student's neuron."""

    teacher: str = "resnet20"
    student: str = "resnet20"
    teacher_width: int | None = None  # channels of the first stage; None: the architecture's own
    student_width: int | None = None
    decay: float = 0.5  # LIF membrane decay per step
    threshold: float = 1.0
    reset: Literal["hard", "subtract"] = "hard"
    surrogate_width: float = 1.0  # triangle surrogate gamma
    # start the student from the teacher's conv/BN/fc weights (same architecture and width) instead of
    # from scratch: an ANN-to-SNN initialisation, not part of CKDSNN; it skips the long plateau a deep
    # spiking ResNet sits on at random initialisation, which matters for short CPU runs
    init_from_teacher: bool = False


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


@dataclass
class OptimConfig:
    """SGD with momentum, cosine schedule after an optional linear warm-up (per step)."""

    epochs: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA that supports it
    grad_clip: float | None = None


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
            if optim.grad_clip is not None and not 0 < optim.grad_clip < float("inf"):
                raise UserError(f"{name}.grad_clip must be positive, got {optim.grad_clip}.")
        from ckdsnn_events.distill.losses import DistillationLoss
        from ckdsnn_events.models import STUDENTS, TEACHERS

        for name, value, known in (("teacher", self.model.teacher, TEACHERS), ("student", self.model.student, STUDENTS)):
            if value not in known:
                raise UserError(f"model.{name} '{value}' is not a known architecture; choose one of "
                                f"{', '.join(sorted(known))}.")
        # the loss checks its own weights, temperatures and variant names; fail before any training
        DistillationLoss(**asdict(self.loss), student_channels=1, teacher_channels=1)
        if self.model.init_from_teacher and (self.model.teacher != self.model.student
                                             or self.model.teacher_width != self.model.student_width):
            raise UserError("model.init_from_teacher needs the same teacher and student architecture and width "
                            f"(got {self.model.teacher}/{self.model.teacher_width} and "
                            f"{self.model.student}/{self.model.student_width}).")
        for name in ("teacher_width", "student_width"):
            width = getattr(self.model, name)
            if width is not None and width < 1:
                raise UserError(f"model.{name} must be at least 1, got {width}.")

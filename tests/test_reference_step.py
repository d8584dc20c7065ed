"""The ``reference`` preset reproduces the released CKDSNN training step: same loss, same gradient.

The released step (github.com/SinoLeu/CKDSNN, ``plt_train_kd_ckd_snn.py``, ``LitModel.training_step``)
is written below as plain functional PyTorch from the released code's formulas, one function per
released function, each line saying which released line it is. It runs on the *same* weights as
our student and teacher (read from their state_dicts) and the same batch, and the test compares
the total loss and the gradient of every student parameter with what our trainer's step computes
(``make_model`` + ``DistillationLoss`` of the resolved ``--preset reference`` config, called as
``fit`` calls them). Nothing of the released code is imported or copied.

Released files read: ``snn_models/resnet_models.py`` (student: ``ResNet``, ``PreActBasicBlock``),
``snn_models/layers.py`` (``LIFSpike``, ``ZIF``, ``tdBatchNorm``, ``tdLayer``, ``add_dimention``),
``ann_models/resnet.py`` (teacher), ``utils/utils.py`` (``getForwardCAM``, ``soft_loss_smooth``,
``smooth_noise_softmax``, ``generate_gaussian_noise``) and, for ``compute_kl_divergence`` and its
``cam_to_prob``, whose source the released ``utils.py`` lacks, the compiled
``utils/__pycache__/utils.cpython-38.pyc`` of the same repository (disassembled: defaults
``eps=1e-10, Tau=2.0``; ``prob = softmax(cam.view(B, -1) / Tau, dim=1)``, ``+ eps`` on both,
``F.kl_div(prob_S.log(), prob_T, reduction="batchmean")``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ckdsnn_events.data.loaders import DatasetInfo
from ckdsnn_events.distill.losses import DistillationLoss
from ckdsnn_events.distill.trainer import make_model
from ckdsnn_events.pipelines.train import resolve_config

f64 = torch.float64
T, B, K, SIZE = 2, 6, 5, 16


# --- the released network, functional (weights P: a state_dict in our parameter names) -----------


class _ZIF(torch.autograd.Function):
    """layers.py ``ZIF``: forward ``(input > 0).float()``; backward ``grad * (1/g)^2 * (g - |input|).clamp(min=0)``."""

    @staticmethod
    def forward(ctx, u, gama):
        ctx.save_for_backward(u)
        ctx.gama = gama
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        g = ctx.gama
        return grad * (1 / g) * (1 / g) * (g - u.abs()).clamp(min=0), None


def _lif_spike(x):
    """layers.py ``LIFSpike`` (thresh 1, tau 0.5, gama 1) on (B, T, ...)."""
    mem, out = 0, []
    for t in range(x.shape[1]):
        mem = mem * 0.5 + x[:, t, ...]  # mem = mem * self.tau + x[:, t, ...]
        spike = _ZIF.apply(mem - 1.0, 1.0)  # spike = self.act(mem - self.thresh, self.gama)
        mem = (1 - spike) * mem  # mem = (1 - spike) * mem   (gradient flows through the reset)
        out.append(spike)
    return torch.stack(out, dim=1)  # torch.stack(spike_pot, dim=1)


def _seq(fn, x):
    """layers.py ``SeqToANNContainer``: run ``fn`` on the (B*T, ...) flattening, view back to (B, T, ...)."""
    y = fn(x.flatten(0, 1))
    return y.view(x.shape[0], x.shape[1], *y.shape[1:])


def _bn(P, name, x):
    """``nn.BatchNorm2d`` in training mode (Lightning trains the LitModel: teacher and student)."""
    return F.batch_norm(x, P[f"{name}.running_mean"].clone(), P[f"{name}.running_var"].clone(),
                        P[f"{name}.weight"], P[f"{name}.bias"], training=True, momentum=0.1, eps=1e-5)


def _conv(P, name, x, stride=1):
    w = P[f"{name}.weight"]
    return F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2)


def _released_student(P, images, blocks=(3, 3, 2)):
    """resnet_models.py ``ResNet._forward_impl`` of ``resnet19``; returns (y, mid_features)."""
    x = _conv(P, "conv1", images)  # x = self.conv1(x)   (on the 4-D image batch)
    x = torch.stack([x] * T, dim=1)  # if len(x.shape) == 4: x = self.add_dim(x)   (add_dimention)
    x = _lif_spike(_seq(lambda v: _bn(P, "bn1", v), x))  # x = self.spike(self.bn(x))   (tdBatchNorm)
    mid = []
    for i, n in enumerate(blocks, start=1):  # self.layer1 .. self.layer3
        for j in range(n):
            p, stride = f"layer{i}.{j}", (2 if i > 1 and j == 0 else 1)
            residual = x  # residual = self.downsample(x) if hasattr(self, 'downsample') else x
            if f"{p}.downsample.1.weight" in P:  # AvgPool2d(stride) -> conv1x1 -> tdBN
                residual = _seq(lambda v: _bn(P, f"{p}.downsample.2",
                                              _conv(P, f"{p}.downsample.1", F.avg_pool2d(v, stride))), x)
            out = _lif_spike(_seq(lambda v: _bn(P, f"{p}.bn1", _conv(P, f"{p}.conv1", v, stride)), x))  # spike1(bn1(conv1))
            out = _seq(lambda v: _bn(P, f"{p}.bn2", _conv(P, f"{p}.conv2", v)), out)  # bn2(conv2(out))
            out = out + residual  # out = out + residual
            last = i == len(blocks) and j == n - 1  # is_last_block = is_last_layer and (i == blocks - 1)
            x = torch.relu(out) if last else _lif_spike(out)  # self.spike2: nn.ReLU() if is_last else LIFSpike
        mid.append(x)  # if return_inter: mid_features.append(x)
    x = _seq(lambda v: F.adaptive_avg_pool2d(v, 1), x)  # x = self.avgpool(x)   (tdLayer)
    x = torch.flatten(x, 2).mean(1)  # torch.flatten(x, 2); x = x.mean(1).squeeze(1)
    x = F.linear(x, P["fc.fc2.weight"], P["fc.fc2.bias"])  # x = self.fc2(x)
    return F.linear(x, P["fc.fc1.weight"], P["fc.fc1.bias"]), mid  # y = self.fc1(x)


def _released_teacher(P, images, blocks=(3, 3, 2)):
    """ann_models/resnet.py ``ResNet.forward`` of ``resnet19`` (PreActBasicBlock: ReLUs, AvgPool shortcut)."""
    out = F.relu(_bn(P, "bn1", _conv(P, "conv1", images)))  # F.relu(self.bn1(self.conv1(x)))
    mid = []
    for i, n in enumerate(blocks, start=1):
        for j in range(n):
            p, stride = f"layer{i}.{j}", (2 if i > 1 and j == 0 else 1)
            residual = out
            if f"{p}.downsample.1.weight" in P:  # nn.Sequential(nn.AvgPool2d(stride), conv1x1, BN)
                residual = _bn(P, f"{p}.downsample.2", _conv(P, f"{p}.downsample.1", F.avg_pool2d(out, stride)))
            h = F.relu(_bn(P, f"{p}.bn1", _conv(P, f"{p}.conv1", out, stride)))  # spike1 = nn.ReLU()
            out = F.relu(_bn(P, f"{p}.bn2", _conv(P, f"{p}.conv2", h)) + residual)  # spike2(out + residual)
        mid.append(out)
    pooled = F.adaptive_avg_pool2d(out, 1).view(out.size(0), -1)  # avgpool; out.view(out.size(0), -1)
    return F.linear(pooled, P["fc.weight"], P["fc.bias"]), mid  # self.linear(out)


# --- the released loss terms ----------------------------------------------------------------------


def _get_forward_cam(feature_conv):
    """utils.py ``getForwardCAM`` on the permuted (T, B, C, H, W) map."""
    cam = feature_conv.sum(dim=0).sum(axis=1)  # cam = feature_conv.sum(dim=0).sum(axis=1)
    cam = cam - cam.min()  # cam = cam - cam.min()
    return cam / (cam.max() + 1e-3)  # cam_img = cam / (cam.max() + 1e-3)


def _compute_cam(feature_maps, class_weights, predicted_classes):
    """plt_train_kd_ckd_snn.py ``compute_cam``."""
    b, d = feature_maps.shape[:2]
    weights = class_weights[predicted_classes]  # weights = class_weights[predicted_classes]
    cams = (feature_maps * weights.view(b, d, 1, 1)).sum(dim=1)  # (feature_maps * weights...).sum(dim=1)
    cam = torch.relu(cams)  # cam = torch.relu(cams)
    cam = cam - cam.min()  # cam = cam - cam.min()
    return cam / (cam.max() + 1e-3)  # cam_img = cam / (cam.max() + 1e-3)


def _compute_kl_divergence(preds_s, preds_t, eps=1e-10, tau=2.0):
    """utils.cpython-38.pyc ``compute_kl_divergence`` with ``cam_to_prob`` (see the module docstring)."""
    prob_s = F.softmax((preds_s / tau).view(preds_s.size(0), -1), dim=1).view_as(preds_s) + eps
    prob_t = F.softmax((preds_t / tau).view(preds_t.size(0), -1), dim=1).view_as(preds_t) + eps
    return F.kl_div(prob_s.log(), prob_t, reduction="batchmean")


def _soft_loss_smooth(student_logits, teacher_logits, noise, temperature=2.0, noise_weight=0.9):
    """utils.py ``soft_loss_smooth`` -> ``smooth_noise_softmax`` -> ``generate_gaussian_noise``;
    ``noise`` is the ``torch.randn_like(logits)`` draw. The config's ``noise_weight: 0.9``."""
    soft_targets = F.softmax(teacher_logits / temperature, dim=1)  # softmax(teacher_logits / temperature)
    smoothed = F.softmax(student_logits / temperature, dim=1)  # softmax(logits / smooth_temp)
    mean = student_logits.mean(dim=-1, keepdim=True)  # mean = logits.mean(dim=-1, keepdim=True)
    stdv = student_logits.std(dim=-1, keepdim=True)  # stdv = logits.std(dim=-1, keepdim=True)
    noisy_logits = mean + noise * (stdv**2)  # gaussian_noise = mean + noise * (stdv**2)
    noisy = F.softmax(noisy_logits / temperature, dim=1)  # softmax(noisy_logits / noise_temp)
    combined = noise_weight * smoothed + (1 - noise_weight) * noisy  # weight * smoothed + (1 - weight) * noisy
    return F.kl_div(combined.log(), soft_targets, reduction="batchmean") * temperature**2


def _released_training_step(student_params, teacher_params, images, labels, noise):
    """plt_train_kd_ckd_snn.py ``LitModel.training_step``."""
    out, mid_out_s = _released_student(student_params, images)  # out, mid_out_s = self.forward(batch, return_inter=True)
    mid_spike = mid_out_s[-1].permute(1, 0, 2, 3, 4)  # mid_spike = mid_out_s[-1].permute(1, 0, 2, 3, 4)
    spike_activate_map = _get_forward_cam(mid_spike)  # getForwardCAM(mid_spike)
    out_t, feat = _released_teacher(teacher_params, images)  # out_t, feat = self.teacher(batch, return_inter=True)
    feature_map = feat[-1]  # feature_map = feat[-1]
    predicted_class = out_t.argmax(dim=1)  # predicted_class = out_t.argmax(dim=1)
    class_weights = teacher_params["fc.weight"].data  # class_weights = self.teacher.linear.weight.data
    grad_cam = _compute_cam(feature_map, class_weights, predicted_class)  # compute_cam(...)
    l3 = _compute_kl_divergence(spike_activate_map, grad_cam, tau=2.0)  # compute_kl_divergence(..., Tau=2.0)
    noise_loss = _soft_loss_smooth(out, out_t, noise, temperature=2.0, noise_weight=0.9)
    return F.cross_entropy(out, labels) + l3 + noise_loss  # self.criterion(out, gt) + l3 + noise_loss


# --- the test -------------------------------------------------------------------------------------


def _info() -> DatasetInfo:
    return DatasetInfo("cifar10", "images", tuple(map(str, range(K))), K, 3, (SIZE, SIZE), T, "direct", 0, 0, 0)


def test_reference_preset_reproduces_the_released_training_step_loss_and_gradient():
    config = resolve_config("cifar10", options={"preset": "reference", "model.teacher_width": 4,
                                                "model.student_width": 4, "data.timesteps": T})
    assert (config.model.last_block, config.model.head, config.model.downsample) == ("relu", "projector", "avgpool")
    assert config.loss.teacher_mode == "train"
    torch.manual_seed(0)
    student = make_model("student", config, _info()).to(f64).train()
    teacher = make_model("teacher", config, _info()).to(f64)
    with torch.no_grad():  # BN affine parameters away from (1, 0) so that a wrong BN mode shows
        for module in (*student.modules(), *teacher.modules()):
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.2, 0.4)
    teacher_params = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    trained = dict(student.named_parameters())  # BN running statistics are buffers: no gradient
    student_params = {k: v.detach().clone().requires_grad_(k in trained) for k, v in student.state_dict().items()}
    images = torch.rand(B, 3, SIZE, SIZE, dtype=f64) * 4
    labels = torch.arange(B) % K
    seed = 1234

    # ours, as ckdsnn_events.distill.trainer.fit runs one distillation step
    teacher.train(config.loss.teacher_mode == "train").requires_grad_(False)
    loss_fn = DistillationLoss(**config.loss.loss_kwargs(), student_channels=student.fc.in_features,
                               teacher_channels=teacher.fc.in_features)
    inputs = images.unsqueeze(0).expand(T, *images.shape)  # direct encoding: constant in time
    with torch.no_grad():
        teacher_logits, teacher_features = teacher(images, return_features=True)
    logits, spikes = student(inputs, return_spikes=True)
    ours, terms = loss_fn(logits, labels, teacher_logits=teacher_logits, student_spikes=next(reversed(spikes.values())),
                          teacher_features=next(reversed(teacher_features.values())),
                          teacher_classifier_weight=teacher.fc.weight,
                          generator=torch.Generator().manual_seed(seed))
    ours.backward()

    # the released step on the same weights, batch and noise draw (randn_like from a generator seeded alike)
    torch.manual_seed(seed)
    noise = torch.randn(B, K, dtype=f64)
    released = _released_training_step(student_params, teacher_params, images, labels, noise)
    grads = torch.autograd.grad(released, [v for v in student_params.values() if v.requires_grad])

    assert terms["samd"] > 0 and terms["nld"] > 0  # every term is live
    torch.testing.assert_close(ours.detach(), released.detach(), rtol=1e-10, atol=1e-12)
    names = [k for k, v in student_params.items() if v.requires_grad]
    assert set(names) == set(trained)
    for name, grad in zip(names, grads):
        torch.testing.assert_close(trained[name].grad, grad, rtol=1e-8, atol=1e-10, msg=name)


def test_teacher_in_eval_mode_does_not_reproduce_the_released_step():
    """The check above can fail: the same step with the teacher's BN on running statistics differs."""
    config = resolve_config("cifar10", options={"preset": "reference", "model.teacher_width": 4,
                                                "data.timesteps": T})
    torch.manual_seed(0)
    teacher = make_model("teacher", config, _info()).to(f64)
    images = torch.rand(B, 3, SIZE, SIZE, dtype=f64) * 4
    params = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        released, _ = _released_teacher(params, images)
        torch.testing.assert_close(teacher.train()(images), released, rtol=1e-10, atol=1e-12)
        assert not torch.allclose(teacher.eval()(images), released, rtol=1e-3, atol=1e-3)

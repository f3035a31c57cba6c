#!/usr/bin/python3
"""PyTorch golden values for gradpool's update rule (test/unit/optim.test.ts, coordinator/optim.ts).

How to run (from the repository root, with Debian's PyTorch 1.13 -- /usr/bin/python3):

    /usr/bin/python3 test/golden/make_optim_golden.py

What it writes, to test/golden/optim.json:
  "params0", "grads"   P=6 starting parameters and one gradient per step (4 steps), exactly
                       representable in float32 (gradpool stores float32)
  "optimizers"         for each case: gradpool's config fields, the learning rate of each step
                       (set on the param group before the step, as gradpool passes lr per
                       call), and after every step the parameters and the optimizer state
                       (SGD momentum_buffer as "m"; Adam exp_avg "m" and exp_avg_sq "v") from
                       torch.optim.SGD (momentum 0 or mu, dampening 0, nesterov False,
                       weight_decay 0) and torch.optim.Adam (amsgrad False, weight_decay 0)
  "clip"               torch.nn.utils.clip_grad_norm_ over two gradient tensors (the flat
                       buffer is their concatenation): the returned total norm and the clipped
                       gradients, for a threshold below and one above the norm
  "schedules"          warm-up as torch.optim.lr_scheduler.LinearLR(start_factor=1/W,
                       end_factor=1, total_iters=W-1) -- factor (e+1)/W at step e -- and the
                       decay after it as CosineAnnealingLR(T_max=steps-W, eta_min=0)

Everything is computed in float64 from float32-representable inputs, so the values are the
exact math that gradpool's float64 arithmetic (with float32 storage) approximates.
Deterministic: inputs come from fixed formulas, no random draws.
"""

import json
import math
import os

import torch

P = 6
STEPS = 4
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'optim.json')


def f32(values):
    """Round to float32 (what gradpool stores), then hold as float64."""
    return torch.tensor(values, dtype=torch.float32).to(torch.float64)


params0 = f32([0.5 - 0.37 * i + 0.05 * i * i for i in range(P)])
# Mixed signs and magnitudes; step 3 has a zero, step 4 a sign flip of step 1.
grads = [
    f32([math.sin(1.3 * i + 0.7) for i in range(P)]),
    f32([0.02 * (i - 2.5) for i in range(P)]),
    f32([0.0, 3.0, -1.5, 0.25, -0.125, 2.0]),
    f32([-math.sin(1.3 * i + 0.7) * 1e-3 for i in range(P)]),
]


def run_optimizer(case):
    """Apply STEPS updates of the case's optimizer; returns per-step params and state."""
    p = torch.nn.Parameter(params0.clone())
    if case['optimizer'] == 'sgd':
        opt = torch.optim.SGD([p], lr=case['lrs'][0])
    elif case['optimizer'] == 'momentum':
        opt = torch.optim.SGD([p], lr=case['lrs'][0], momentum=case['momentum'], dampening=0, nesterov=False, weight_decay=0)
    else:
        opt = torch.optim.Adam([p], lr=case['lrs'][0], betas=(case['beta1'], case['beta2']), eps=case['eps'], weight_decay=0, amsgrad=False)
    steps = []
    for step, lr in enumerate(case['lrs']):
        for group in opt.param_groups:
            group['lr'] = lr
        p.grad = grads[step].clone()
        opt.step()
        state = opt.state[p]
        record = {'params': p.detach().tolist()}
        if case['optimizer'] == 'momentum':
            record['m'] = state['momentum_buffer'].tolist()
        if case['optimizer'] == 'adam':
            record['m'] = state['exp_avg'].tolist()
            record['v'] = state['exp_avg_sq'].tolist()
        steps.append(record)
    return steps


CASES = [
    {'name': 'sgd', 'optimizer': 'sgd', 'lrs': [0.1, 0.1, 0.05, 0.2]},
    {'name': 'momentum 0.9', 'optimizer': 'momentum', 'momentum': 0.9, 'lrs': [0.05, 0.05, 0.05, 0.05]},
    {'name': 'momentum 0.5, changing lr', 'optimizer': 'momentum', 'momentum': 0.5, 'lrs': [0.01, 0.1, 0.03, 0.2]},
    {'name': 'adam defaults', 'optimizer': 'adam', 'beta1': 0.9, 'beta2': 0.999, 'eps': 1e-8, 'lrs': [0.01, 0.01, 0.01, 0.01]},
    # A large eps against tiny gradients: tells eps added to sqrt(v_hat) from eps inside the
    # root or added before the bias correction.
    {'name': 'adam, eps comparable to sqrt(v)', 'optimizer': 'adam', 'beta1': 0.8, 'beta2': 0.99, 'eps': 1e-3, 'lrs': [0.002, 0.004, 0.006, 0.008]},
]


def clip_case(threshold):
    a = f32([3.0, -4.0, 0.5])
    b = f32([[1.25, -2.0], [0.0, 6.5]])
    pa, pb = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)), torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    pa.grad, pb.grad = a.clone(), b.clone()
    norm = torch.nn.utils.clip_grad_norm_([pa, pb], max_norm=threshold, norm_type=2.0)
    return {
        'threshold': threshold,
        'grad': torch.cat([a, b.flatten()]).tolist(),
        'norm': norm.item(),
        'clipped': torch.cat([pa.grad, pb.grad.flatten()]).tolist(),
    }


def schedules(lr, warmup, steps):
    dummy = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([dummy], lr=lr)
    linear = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
    warm = []
    for _ in range(warmup):
        warm.append(opt.param_groups[0]['lr'])
        opt.step()
        linear.step()
    opt = torch.optim.SGD([dummy], lr=lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - warmup, eta_min=0)
    decay = []
    for _ in range(steps - warmup + 1):
        decay.append(opt.param_groups[0]['lr'])
        opt.step()
        cosine.step()
    return {'lr': lr, 'warmup': warmup, 'steps': steps, 'warmupLr': warm, 'cosineLr': decay}


def main():
    torch.set_default_dtype(torch.float64)
    fixture = {
        'torch': torch.__version__,
        'params0': params0.tolist(),
        'grads': [g.tolist() for g in grads],
        'optimizers': [{**case, 'steps': run_optimizer(case)} for case in CASES],
        'clip': [clip_case(1.0), clip_case(100.0)],
        'schedules': [schedules(0.003, 5, 25), schedules(1.0, 3, 10)],
    }
    with open(OUT, 'w') as f:
        json.dump(fixture, f, indent=1)
        f.write('\n')
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()

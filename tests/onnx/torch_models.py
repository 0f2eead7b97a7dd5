#!/usr/bin/python3
"""torch_models.py OUTDIR: exports small PyTorch models to ONNX for
tests/onnx/test_torch_models.c, each with a seeded input and PyTorch's own
output as .npy files: OUTDIR/NAME.onnx, NAME.in.npy, NAME.out.npy.

Models (weights random, seeded; nothing is downloaded): an MLP, a
LeNet-style CNN, torchvision's ResNet-18 (64x64 input) and a Transformer
encoder layer. Run with Debian's python3 (python3-torch, python3-torchvision)."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.Tanh(),
                                 nn.Linear(32, 5), nn.Softmax(dim=-1))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(16 * 5 * 5, 120)
        self.f2 = nn.Linear(120, 84)
        self.f3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.c2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.f1(x))
        x = torch.relu(self.f2(x))
        return self.f3(x)


def models():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None)
    # give the batch norms non-trivial statistics, as a trained net has
    for m in resnet.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    encoder = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0,
                                         batch_first=True)
    return [
        ("mlp", MLP(), torch.randn(4, 20)),
        ("lenet", LeNet(), torch.randn(2, 1, 28, 28)),
        ("resnet18", resnet, torch.randn(1, 3, 64, 64)),
        ("transformer", encoder, torch.randn(2, 7, 32)),
    ]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for name, model, x in models():
        model.eval()
        with torch.no_grad():
            y = model(x)
        # exported with gradients on: the Transformer layer's inference fast
        # path (one fused aten op) has no ONNX form
        torch.onnx.export(model, (x,), os.path.join(out, name + ".onnx"), input_names=["input"],
                          output_names=["output"], opset_version=14)
        np.save(os.path.join(out, name + ".in.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(out, name + ".out.npy"), y.numpy().astype(np.float32))
        print(name, tuple(x.shape), "->", tuple(y.shape))


if __name__ == "__main__":
    main()

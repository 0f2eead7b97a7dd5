#!/usr/bin/python3
"""rnn_models.py OUTDIR: writes small ONNX models with one recurrent node
(LSTM, GRU, RNN) for tests/onnx/test_onnx_rnn.c, each with seeded inputs and
independently computed outputs: OUTDIR/NAME.onnx, NAME.<input>.npy for its
run-time inputs and NAME.<output>.npy for its outputs (Y, Y_h, Y_c).

The expected values come from PyTorch (torch.nn.LSTM/GRU/RNN, with packed
sequences for variable lengths) where PyTorch has the variant, and from a
plain numpy loop over the ONNX spec's equations where it does not
(peepholes, GRU linear_before_reset=0, activations other than the defaults,
clip). Also one LinearAttention and one CausalConvWithState model (opset 27,
numpy loops over the update rules; written without onnx.checker, which may
predate opset 27). Weights are initializers; nothing is downloaded or committed. Run
with Debian's python3 (python3-torch, python3-onnx)."""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

OPSET = 14  # layout appears at 14


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---- numpy oracle, written from the ONNX spec (seq-major, one direction) ----

ACTS = {
    "Sigmoid": sigmoid,
    "Tanh": np.tanh,
    "Relu": lambda x: np.maximum(x, 0),
    "HardSigmoid": lambda x: np.clip(0.3 * x + 0.4, 0, 1),  # alpha .3, beta .4 below
    "LeakyRelu": lambda x: np.where(x >= 0, x, 0.2 * x),  # alpha .2 below
}


def np_dir(kind, x, w, r, b, h0, c0, p, lens, back, f, g, h_act, clip, lbr, couple):
    """One direction: x [S, B, I]; returns Y [S, B, H], last h, last c."""
    S, B, _ = x.shape
    H = r.shape[1]
    G = w.shape[0]
    wb = b[:G] if b is not None else np.zeros(G)
    rb = b[G:] if b is not None else np.zeros(G)
    h = h0.copy()
    c = c0.copy() if c0 is not None else None
    y = np.zeros((S, B, H))
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    order = range(S - 1, -1, -1) if back else range(S)
    for t in order:
        xt = x[t] @ w.T + wb
        if kind == "LSTM":
            a = xt + h @ r.T + rb
            i, o, fg, cc = (a[:, k * H:(k + 1) * H] for k in range(4))
            pi, po, pf = (p[k * H:(k + 1) * H] for k in range(3)) if p is not None else (0, 0, 0)
            i = f(cl(i + pi * c))
            fg = 1 - i if couple else f(cl(fg + pf * c))
            cn = fg * c + i * g(cl(cc))
            o = f(cl(o + po * cn))
            hn = o * h_act(cn)
        elif kind == "GRU":
            xz, xr, xh = (xt[:, k * H:(k + 1) * H] for k in range(3))
            rz, rr, rh = (r[k * H:(k + 1) * H] for k in range(3))
            bz, br, bh = (rb[k * H:(k + 1) * H] for k in range(3))
            z = f(cl(xz + h @ rz.T + bz))
            rg = f(cl(xr + h @ rr.T + br))
            if lbr:
                ht = g(cl(xh + rg * (h @ rh.T + bh)))
            else:
                ht = g(cl(xh + (rg * h) @ rh.T + bh))
            hn = (1 - z) * ht + z * h
            cn = None
        else:
            hn = f(cl(xt + h @ r.T + rb))
            cn = None
        live = (t < lens)[:, None]
        h = np.where(live, hn, h)
        if c is not None:
            c = np.where(live, cn, c)
        y[t] = np.where(live, hn, 0)
    return y, h, c


def np_rnn(kind, x, w, r, b, h0, c0, p, lens, direction, acts, clip=None, lbr=0, couple=0):
    nd = w.shape[0]
    nper = {"RNN": 1, "GRU": 2, "LSTM": 3}[kind]
    ys, hs, cs = [], [], []
    for d in range(nd):
        fa = [ACTS[a] for a in acts[d * nper:(d + 1) * nper]] + [None, None]
        y, h, c = np_dir(kind, x, w[d], r[d], None if b is None else b[d], h0[d],
                         None if c0 is None else c0[d], None if p is None else p[d], lens,
                         direction == "reverse" or d == 1, fa[0], fa[1], fa[2], clip, lbr, couple)
        ys.append(y)
        hs.append(h)
        cs.append(c)
    return np.stack(ys, 1), np.stack(hs), (np.stack(cs) if kind == "LSTM" else None)


# ---- torch weights in ONNX gate order ----

def torch_lstm_weights(m, nd):
    """torch i,f,g,o -> ONNX i,o,f,c; B = [Wb, Rb]."""
    def re(a):
        i, f, g, o = np.split(a, 4, 0)
        return np.concatenate([i, o, f, g], 0)
    W, R, B = [], [], []
    for d in range(nd):
        s = "_reverse" if d else ""
        W.append(re(getattr(m, "weight_ih_l0" + s).detach().numpy()))
        R.append(re(getattr(m, "weight_hh_l0" + s).detach().numpy()))
        B.append(np.concatenate([re(getattr(m, "bias_ih_l0" + s).detach().numpy()),
                                 re(getattr(m, "bias_hh_l0" + s).detach().numpy())]))
    return np.stack(W), np.stack(R), np.stack(B)


def torch_gru_weights(m, nd):
    """torch r,z,n -> ONNX z,r,h (torch is linear_before_reset=1)."""
    def re(a):
        r, z, n = np.split(a, 3, 0)
        return np.concatenate([z, r, n], 0)
    W, R, B = [], [], []
    for d in range(nd):
        s = "_reverse" if d else ""
        W.append(re(getattr(m, "weight_ih_l0" + s).detach().numpy()))
        R.append(re(getattr(m, "weight_hh_l0" + s).detach().numpy()))
        B.append(np.concatenate([re(getattr(m, "bias_ih_l0" + s).detach().numpy()),
                                 re(getattr(m, "bias_hh_l0" + s).detach().numpy())]))
    return np.stack(W), np.stack(R), np.stack(B)


def torch_run(m, x, h0, c0, lens, batch_first):
    """Runs m on x ([S,B,I] or [B,S,I]); returns Y [S,D,B,H], h_n, c_n."""
    hx = (torch.tensor(h0), torch.tensor(c0)) if c0 is not None else torch.tensor(h0)
    xt = torch.tensor(x)
    with torch.no_grad():
        if lens is not None:
            packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lens),
                                                             batch_first=batch_first,
                                                             enforce_sorted=False)
            yp, hn = m(packed, hx)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(yp, batch_first=batch_first,
                                                         total_length=x.shape[1 if batch_first else 0])
        else:
            y, hn = m(xt, hx)
    y = y.numpy()
    if batch_first:
        y = y.transpose(1, 0, 2)
    S, B = y.shape[:2]
    nd = 2 if m.bidirectional else 1
    y = y.reshape(S, B, nd, -1).transpose(0, 2, 1, 3)
    if isinstance(hn, tuple):
        return y, hn[0].numpy(), hn[1].numpy()
    return y, hn.numpy(), None


# ---- model writing ----

def f32(a):
    return np.asarray(a, dtype=np.float32)


ORDERS = {
    "LinearAttention": (["query", "key", "value", "past_state", "decay", "beta"],
                        ["output", "present_state"]),
    "CausalConvWithState": (["input", "weight", "bias", "past_state"],
                            ["output", "present_state"]),
}


def write(out, name, kind, attrs, inits, runtime, outputs, opset=OPSET):
    """inits: {input name: array} as initializers; runtime: {name: array}
    as graph inputs; outputs: {name: expected array} (in ONNX layout).
    With no outputs: a malformed model, not checked."""
    order = ORDERS.get(kind, (["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c",
                               "P"], None))[0]
    onames = ORDERS.get(kind, (None, ["Y", "Y_h", "Y_c"]))[1]
    names = [k for k in order if k in inits or k in runtime]
    last = max(order.index(k) for k in names)
    ins = [k if (k in inits or k in runtime) else "" for k in order[:last + 1]]
    outs = [k if k in outputs else "" for k in onames] if outputs else [onames[0]]
    while outs and not outs[-1]:
        outs.pop()
    node = helper.make_node(kind, ins, outs, name=name, **attrs)
    ginputs, initializers = [], []
    for k, v in runtime.items():
        et = TensorProto.INT32 if v.dtype == np.int32 else TensorProto.FLOAT
        ginputs.append(helper.make_tensor_value_info(k, et, list(v.shape)))
        np.save(os.path.join(out, "%s.%s.npy" % (name, k)), v)
    for k, v in inits.items():
        initializers.append(numpy_helper.from_array(v, k))
    goutputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in outs
                if k and k not in outputs]
    for k, v in outputs.items():
        goutputs.append(helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)))
        np.save(os.path.join(out, "%s.%s.npy" % (name, k)), f32(v))
    graph = helper.make_graph([node], name, ginputs, goutputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    if outputs and opset == OPSET:  # this onnx may not know newer opsets
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, name + ".onnx"))
    print(name, {k: v.shape for k, v in outputs.items()})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    S, B, I, H = 5, 3, 4, 6

    # 1. bidirectional LSTM with initial states and variable lengths (torch)
    m = torch.nn.LSTM(I, H, bidirectional=True)
    x = f32(rng.standard_normal((S, B, I)))
    h0 = f32(rng.standard_normal((2, B, H)))
    c0 = f32(rng.standard_normal((2, B, H)))
    lens = np.array([5, 2, 4], dtype=np.int32)
    W, R, Bb = torch_lstm_weights(m, 2)
    y, yh, yc = torch_run(m, x, h0, c0, lens, False)
    write(out, "lstm_bidir", "LSTM", {"hidden_size": H, "direction": "bidirectional"},
          {"W": f32(W), "R": f32(R), "B": f32(Bb), "initial_h": h0, "initial_c": c0},
          {"X": x, "sequence_lens": lens}, {"Y": y, "Y_h": yh, "Y_c": yc})

    # 2. bidirectional LSTM with peepholes, initial states, clip (numpy)
    W = f32(rng.standard_normal((2, 4 * H, I)) * 0.5)
    R = f32(rng.standard_normal((2, 4 * H, H)) * 0.5)
    Bb = f32(rng.standard_normal((2, 8 * H)) * 0.5)
    P = f32(rng.standard_normal((2, 3 * H)))
    full = np.full(B, S)
    y, yh, yc = np_rnn("LSTM", x.astype(np.float64), W, R, Bb, h0, c0, P, full, "bidirectional",
                       ["Sigmoid", "Tanh", "Tanh"] * 2, clip=2.5)
    write(out, "lstm_peep", "LSTM", {"hidden_size": H, "direction": "bidirectional", "clip": 2.5},
          {"W": W, "R": R, "B": Bb, "initial_c": c0, "P": P},
          {"X": x, "initial_h": h0}, {"Y": y, "Y_h": yh, "Y_c": yc})

    # 3. GRU linear_before_reset=1, layout=1, bidirectional (torch, batch_first)
    m = torch.nn.GRU(I, H, bidirectional=True, batch_first=True)
    xb = f32(rng.standard_normal((B, S, I)))
    h0b = f32(rng.standard_normal((2, B, H)))
    W, R, Bb = torch_gru_weights(m, 2)
    y, yh, _ = torch_run(m, xb, h0b, None, None, True)
    write(out, "gru_lbr1_layout1", "GRU",
          {"hidden_size": H, "direction": "bidirectional", "linear_before_reset": 1, "layout": 1},
          {"W": f32(W), "R": f32(R), "B": f32(Bb)},
          {"X": xb, "initial_h": f32(h0b.transpose(1, 0, 2))},
          {"Y": y.transpose(2, 0, 1, 3), "Y_h": yh.transpose(1, 0, 2)})

    # 4. GRU linear_before_reset=0, reverse, variable lengths (numpy)
    W = f32(rng.standard_normal((1, 3 * H, I)) * 0.5)
    R = f32(rng.standard_normal((1, 3 * H, H)) * 0.5)
    Bb = f32(rng.standard_normal((1, 6 * H)) * 0.5)
    lens = np.array([3, 5, 0], dtype=np.int32)
    y, yh, _ = np_rnn("GRU", x.astype(np.float64), W, R, Bb, np.zeros((1, B, H)), None, None, lens,
                      "reverse", ["Sigmoid", "Tanh"])
    write(out, "gru_lbr0", "GRU", {"hidden_size": H, "direction": "reverse"},
          {"W": W, "R": R, "B": Bb}, {"X": x, "sequence_lens": lens}, {"Y": y, "Y_h": yh})

    # 5. GRU with other activations (alphas and betas) and linear_before_reset=0 (numpy)
    y, yh, _ = np_rnn("GRU", x.astype(np.float64), W, R, Bb, np.zeros((1, B, H)), None, None,
                      np.full(B, S), "forward", ["HardSigmoid", "LeakyRelu"])
    write(out, "gru_acts", "GRU",
          {"hidden_size": H, "activations": ["HardSigmoid", "LeakyRelu"],
           "activation_alpha": [0.3, 0.2], "activation_beta": [0.4]},
          {"W": W, "R": R, "B": Bb}, {"X": x}, {"Y": y, "Y_h": yh})

    # 6. plain RNN, layout=1, ReLU, with lengths (torch)
    m = torch.nn.RNN(I, H, nonlinearity="relu", batch_first=True)
    lens = np.array([4, 5, 1], dtype=np.int32)
    h0 = f32(rng.standard_normal((1, B, H)))
    W = m.weight_ih_l0.detach().numpy()[None]
    R = m.weight_hh_l0.detach().numpy()[None]
    Bb = np.concatenate([m.bias_ih_l0.detach().numpy(), m.bias_hh_l0.detach().numpy()])[None]
    y, yh, _ = torch_run(m, xb, h0, None, lens, True)
    write(out, "rnn_relu_layout1", "RNN",
          {"hidden_size": H, "activations": ["Relu"], "layout": 1},
          {"W": f32(W), "R": f32(R), "B": f32(Bb), "sequence_lens": lens,
           "initial_h": f32(h0.transpose(1, 0, 2))},
          {"X": xb}, {"Y": y.transpose(2, 0, 1, 3), "Y_h": yh.transpose(1, 0, 2)})

    # 7. LSTM with input_forget=1 (f = 1 - i), reverse, Y_c only (numpy)
    W = f32(rng.standard_normal((1, 4 * H, I)) * 0.5)
    R = f32(rng.standard_normal((1, 4 * H, H)) * 0.5)
    _, _, yc = np_rnn("LSTM", x.astype(np.float64), W, R, None, np.zeros((1, B, H)),
                      np.zeros((1, B, H)), None, np.full(B, S), "reverse",
                      ["Sigmoid", "Tanh", "Tanh"], couple=1)
    write(out, "lstm_input_forget", "LSTM",
          {"hidden_size": H, "direction": "reverse", "input_forget": 1},
          {"W": W, "R": R}, {"X": x}, {"Y_c": yc})

    # 8. LinearAttention (opset 27): gated delta rule, 4 query heads on 2 kv
    # heads, per-head decay, one beta for all heads, a past state (numpy)
    Bn, T, hq, hkv, dk, dv = 2, 5, 4, 2, 3, 4
    q = f32(rng.standard_normal((Bn, T, hq * dk)))
    k = f32(rng.standard_normal((Bn, T, hkv * dk)) * 0.5)
    v = f32(rng.standard_normal((Bn, T, hkv * dv)))
    decay = f32(-np.abs(rng.standard_normal((Bn, T, hkv))) * 0.3)
    beta = f32(sigmoid(rng.standard_normal((Bn, T, 1))))
    past = f32(rng.standard_normal((Bn, hkv, dk, dv)) * 0.5)
    st = past.astype(np.float64)
    y = np.zeros((Bn, T, hq, dv))
    for t in range(T):
        for b in range(Bn):
            for h in range(hkv):
                kt = k[b, t, h * dk:(h + 1) * dk]
                vt = v[b, t, h * dv:(h + 1) * dv]
                st[b, h] *= np.exp(decay[b, t, h])
                st[b, h] += np.outer(kt, beta[b, t, 0] * (vt - st[b, h].T @ kt))
            for h in range(hq):
                qt = q[b, t, h * dk:(h + 1) * dk]
                y[b, t, h] = 0.5 * (qt @ st[b, h // (hq // hkv)])
    write(out, "linear_attention_gqa", "LinearAttention",
          {"q_num_heads": hq, "kv_num_heads": hkv, "scale": 0.5},
          {}, {"query": q, "key": k, "value": v, "past_state": past, "decay": decay,
               "beta": beta},
          {"output": y.reshape(Bn, T, hq * dv), "present_state": st}, opset=27)

    # 9. CausalConvWithState (opset 27): silu, bias and past state (numpy)
    C, L, K = 3, 6, 4
    xin = f32(rng.standard_normal((2, C, L)))
    wt = f32(rng.standard_normal((C, 1, K)))
    bias = f32(rng.standard_normal(C))
    past = f32(rng.standard_normal((2, C, K - 1)))
    padded = np.concatenate([past, xin], 2).astype(np.float64)
    y = np.zeros((2, C, L))
    for t in range(L):
        y[:, :, t] = (padded[:, :, t:t + K] * wt[None, :, 0, :]).sum(-1) + bias
    y = y * sigmoid(y)
    write(out, "causal_conv_silu", "CausalConvWithState", {"activation": "silu"},
          {"weight": wt, "bias": bias}, {"input": xin, "past_state": past},
          {"output": y, "present_state": padded[:, :, -(K - 1):]}, opset=27)

    # 10. a malformed model: LSTM weights sized for a GRU (no expected outputs)
    write(out, "lstm_bad_w", "LSTM", {"hidden_size": H},
          {"W": f32(np.zeros((1, 3 * H, I))), "R": R}, {"X": x}, {})


if __name__ == "__main__":
    main()

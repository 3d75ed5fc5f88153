# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Convert the layers of the `aft-pytorch` package (PyPI aft-pytorch 0.2.2, MIT) to AFT mixers of this project.

    python -m conversion.aft_pytorch_to_aft STATE_DICT.pt OUT --kind local --dim 128 --hidden-dim 128 \\
        --max-seqlen 256 --window 32

aft-pytorch has three layers, `AFTFull`, `AFTSimple` and `AFTLocal`, each a single-head AFT with projections
`to_q`, `to_k`, `to_v` (dim -> hidden_dim), `project` (hidden_dim -> dim) and, for full and local, a dense learned
bias `wbias` of shape (max_seqlen, max_seqlen). Ours is `modeling_aft.AFTMixer` with `q_proj`, `k_proj`, `v_proj`,
`out_proj` and, with `position_bias_dim=0`, the same dense (T, T) bias `position_bias`. The tensors map one to one:

    to_q.{weight,bias} -> q_proj      to_k -> k_proj      to_v -> v_proj      project -> out_proj
    wbias              -> position_bias (AFTLocal: zero outside the window, see below)

What was checked against their source, so that the converted layer computes the same function:
- AFTFull: Y = sigmoid(Q) * (exp(w) @ (exp(K) * V)) / (exp(w) @ exp(K)) with w[t, t'] the bias of key t' seen by
  query t, over every key (no causal mode), w cut to [:T, :T] for shorter inputs. That is the paper's Eq. 2 and
  our AFT-full with causal=False, exactly.
- AFTSimple: sigmoid(Q) * sum_t softmax_t(K) * V, the paper's Eq. 5: our AFT-simple with causal=False.
- AFTLocal: its forward replaces `wbias` by a copy that is 0 where |t - t'| >= s (and keeps it so, the parameter is
  overwritten), then runs the AFT-full formula. 0, not -inf, outside the window: far keys still count with bias 0,
  as in the paper's Eq. 4 and in our AFT-local (`local_window` = s). The semantics agree; the converter stores the
  masked bias, so the result is the same whether their state dict was saved before or after a forward. A window
  s >= max_seqlen keeps every pair, and is converted to local_window = max_seqlen (the same function, since our
  config bounds the window by the maximum length). A window s < 1 would zero the whole bias: refused.
- Their code subtracts no maximum before exp, ours does: the results agree wherever theirs does not overflow.

What does not convert (an error says so): hidden_dim != dim. Our mixer's projections are hidden_size x hidden_size,
so a layer whose inner width differs from its model width has no exact counterpart. Nothing else is approximated.

The CLI reads a file written by `torch.save(module.state_dict())` (loaded with weights_only=True; `--prefix` picks a
layer out of a larger model's state dict, e.g. `--prefix enc.0.attn.`) and writes OUT, a Hugging Face folder holding
an `AFTModel` with ONE block: `layers.0.mixer` carries the converted weights, every other weight (byte embeddings,
layer norms, MLP, final norm) is freshly initialised from `--seed`. The model therefore does not compute what their
layer computed; its mixer does:

    mixer = AFTModel.from_pretrained(OUT).layers[0].mixer      # mixer(x) == their_module(x), x of shape (B, T, dim)

The config has causal=False (their layers are bidirectional), position_bias_dim=0 (their bias is dense),
hidden_size=dim, max_position_embeddings=max_seqlen, dropout 0. Weights are stored in float32 (aft-pytorch's own
dtype; AFTLocal's forward makes its bias float32 whatever the module's dtype). OUT also holds `conversion.json`:
the source, the hyperparameters and which tensors were copied, masked or created. OUT is written to a `.tmp-*`
sibling and renamed only when everything succeeded; an existing OUT is never overwritten. Every failure of the command
is one line `error: ...` on stderr and exit status 2.

Python API: `convert_state_dict` (a state dict + hyperparameters -> our mixer's state dict + AFTConfig),
`convert_module` (a live AFTFull/AFTSimple/AFTLocal -> the same), `mixer_from_module` (-> a ready AFTMixer),
`build_model` (-> the one-block AFTModel) and `convert_file` (what the CLI does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from conversion import cli
from conversion.staging import staged_folder
from modeling_aft import AFTConfig, AFTMixer, AFTModel

KINDS = ("full", "simple", "local")
# aft-pytorch's constructor defaults, mirrored by the CLI so that a layer built with them needs no flag.
DEFAULT_HIDDEN_DIM = 64
DEFAULT_WINDOW = 256
# Their projection names -> ours; each has a weight and a bias.
_PROJECTIONS = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "project": "out_proj"}
_MIXER_PREFIX = "layers.0.mixer."


def expected_shapes(kind: str, dim: int, hidden_dim: int, max_seqlen: int | None) -> dict[str, tuple[int, ...]]:
    """The tensors of an aft-pytorch layer and their shapes, as its constructor creates them."""
    _check_kind(kind)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in ("to_q", "to_k", "to_v"):
        shapes[f"{name}.weight"] = (hidden_dim, dim)
        shapes[f"{name}.bias"] = (hidden_dim,)
    shapes["project.weight"] = (dim, hidden_dim)
    shapes["project.bias"] = (dim,)
    if kind != "simple":
        shapes["wbias"] = (max_seqlen, max_seqlen)
    return shapes


def local_window_mask(length: int, window: int) -> torch.Tensor:
    """(T, T) booleans: True where |t - t'| < window, the pairs whose bias AFTLocal keeps."""
    positions = torch.arange(length)
    return (positions[:, None] - positions[None, :]).abs() < window  # (T, T)


def target_config(
    kind: str, dim: int, max_seqlen: int | None = None, window: int | None = None, vocab_size: int = 256
) -> AFTConfig:
    """The AFTConfig of a one-block bidirectional model whose mixer equals the aft-pytorch layer."""
    _check_kind(kind)
    fields = dict(
        aft_variant=kind,
        hidden_size=dim,
        num_hidden_layers=1,
        intermediate_size=4 * dim,
        position_bias_dim=0,  # their bias is a dense T x T matrix
        causal=False,  # their layers have no causal mode
        hidden_dropout_prob=0.0,
        use_position_embeddings=False,
        vocab_size=vocab_size,
        architectures=["AFTModel"],
    )
    if max_seqlen is not None:
        fields["max_position_embeddings"] = max_seqlen
    if kind == "local":
        fields["local_window"] = window
    return AFTConfig(**fields)


def convert_state_dict(
    state_dict: dict[str, torch.Tensor],
    kind: str,
    dim: int,
    hidden_dim: int | None = None,
    max_seqlen: int | None = None,
    window: int | None = None,
    prefix: str = "",
    vocab_size: int = 256,
) -> tuple[dict[str, torch.Tensor], AFTConfig]:
    """An aft-pytorch layer's state dict -> (the state dict of our AFTMixer, the AFTConfig that builds it).

    hidden_dim and max_seqlen default to what the tensors show; given, they are checked against them. window is
    AFTLocal's s (required for kind="local"). prefix selects the layer's keys inside a larger state dict.
    """
    _check_kind(kind)
    tensors = _select(state_dict, prefix)
    shapes = expected_shapes(kind, 1, 1, 1)  # only the names matter here; the sizes are checked below
    _check_keys(tensors, shapes, kind, prefix)
    if tensors["to_q.weight"].dim() == 2 and hidden_dim is None:
        hidden_dim = tensors["to_q.weight"].shape[0]
    if kind != "simple" and max_seqlen is None and tensors["wbias"].dim() == 2:
        max_seqlen = tensors["wbias"].shape[0]
    _check_sizes(kind, dim, hidden_dim, max_seqlen, window)
    _check_shapes(tensors, expected_shapes(kind, dim, hidden_dim, max_seqlen), prefix)
    if hidden_dim != dim:
        raise ValueError(
            f"hidden_dim={hidden_dim} differs from dim={dim}: our AFTMixer's Q, K, V and output projections are "
            f"hidden_size x hidden_size, so an aft-pytorch layer converts exactly only when hidden_dim == dim; "
            "there is no equivalent layer for this one."
        )
    if kind == "local":
        window = min(window, max_seqlen)  # s >= max_seqlen keeps every pair: the same as s = max_seqlen
    config = target_config(kind, dim, max_seqlen, window, vocab_size)

    mixer: dict[str, torch.Tensor] = {}
    for theirs, ours in _PROJECTIONS.items():
        for part in ("weight", "bias"):
            mixer[f"{ours}.{part}"] = tensors[f"{theirs}.{part}"].detach().clone().contiguous()
    if kind != "simple":
        w = tensors["wbias"].detach().clone()  # (T, T)
        if kind == "local":
            # What AFTLocal.forward writes into its own parameter; storing it makes the state dict's age irrelevant.
            w = torch.where(local_window_mask(max_seqlen, window), w, torch.zeros_like(w))
        mixer["position_bias"] = w.contiguous()
    return mixer, config


def convert_module(module: nn.Module, vocab_size: int = 256) -> tuple[dict[str, torch.Tensor], AFTConfig]:
    """A live aft_pytorch.AFTFull / AFTSimple / AFTLocal -> (our mixer's state dict, AFTConfig)."""
    kind = _kind_of(module)
    window = module.s if kind == "local" else None
    return convert_state_dict(
        module.state_dict(), kind, module.dim, module.hidden_dim, window=window, vocab_size=vocab_size
    )


def mixer_from_module(module: nn.Module) -> AFTMixer:
    """Our AFTMixer computing what the aft-pytorch layer computes (bidirectional, in float32)."""
    state, config = convert_module(module)
    mixer = AFTMixer(config)
    mixer.load_state_dict(state, strict=True)
    return mixer


def build_model(mixer_state: dict[str, torch.Tensor], config: AFTConfig, seed: int = 0) -> AFTModel:
    """The one-block AFTModel: converted mixer weights, every other weight fresh from `seed`."""
    with torch.random.fork_rng(devices=[]):  # a library call must not move the caller's random stream
        torch.manual_seed(seed)
        model = AFTModel(config)
    missing = set(model.layers[0].mixer.state_dict()) - set(mixer_state)
    unexpected = set(mixer_state) - set(model.layers[0].mixer.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"the converted mixer does not fit AFTMixer: missing {sorted(missing)}, unexpected {sorted(unexpected)}."
        )
    with torch.no_grad():
        for name, tensor in model.layers[0].mixer.state_dict().items():
            if tuple(tensor.shape) != tuple(mixer_state[name].shape):
                raise ValueError(
                    f"tensor {_MIXER_PREFIX}{name}: expected shape {tuple(tensor.shape)}, found "
                    f"{tuple(mixer_state[name].shape)}."
                )
            tensor.copy_(mixer_state[name])  # state_dict() shares storage with the parameters
    return model


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A file written by torch.save(module.state_dict()), read without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state-dict file {str(path)!r} does not exist; pass the file written by "
                                "torch.save(module.state_dict()).")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors come in many classes; the fix is the same for all
        raise ValueError(
            f"{str(path)!r} is not a plain state dict that torch.load(weights_only=True) can read ({err}); save "
            "the layer with torch.save(module.state_dict(), path), not the module itself."
        ) from err
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(
            f"{str(path)!r} holds a {type(loaded).__name__}, not a dict of tensors; save the layer with "
            "torch.save(module.state_dict(), path)."
        )
    return dict(loaded)


def convert_file(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    kind: str,
    dim: int,
    hidden_dim: int | None = DEFAULT_HIDDEN_DIM,
    max_seqlen: int | None = None,
    window: int | None = DEFAULT_WINDOW,
    prefix: str = "",
    vocab_size: int = 256,
    seed: int = 0,
) -> dict:
    """The CLI's work: state-dict file -> OUT (one-block AFTModel folder + conversion.json). Returns the report."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise FileExistsError(f"output folder {str(output_dir)!r} already exists; choose a new folder or delete it.")
    state_dict = load_state_dict_file(input_path)
    mixer_state, config = convert_state_dict(
        state_dict, kind, dim, hidden_dim, max_seqlen, window if kind == "local" else None, prefix, vocab_size
    )
    model = build_model(mixer_state, config, seed)
    report = _report(input_path, kind, state_dict, prefix, mixer_state, config, window, model, seed)
    _write_folder(output_dir, model, report)
    return report


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(
            f"kind={kind!r} is unknown; choose one of {', '.join(KINDS)} (aft-pytorch's AFTConv is empty)."
        )


def _check_sizes(kind, dim, hidden_dim, max_seqlen, window) -> None:
    for name, value in (("dim", dim), ("hidden_dim", hidden_dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer (the {name} of the aft-pytorch layer).")
    if kind != "simple" and (not isinstance(max_seqlen, int) or max_seqlen < 1):
        raise ValueError(f"max_seqlen={max_seqlen!r} must be a positive integer (the side of wbias) for kind={kind!r}.")
    if kind == "simple" and max_seqlen is not None and max_seqlen < 1:
        raise ValueError(f"max_seqlen={max_seqlen} must be at least 1.")
    if kind == "local" and (not isinstance(window, int) or window < 1):
        raise ValueError(
            f"window={window!r}: AFTLocal's s must be at least 1 (s < 1 zeroes the whole bias, which is AFT-full with "
            "w = 0); pass --window with the s the layer was built with."
        )


def _select(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if not prefix:
        return dict(state_dict)
    selected = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not selected:
        sample = ", ".join(sorted(state_dict)[:6])
        raise ValueError(f"no tensor starts with prefix={prefix!r}; the state dict holds e.g. {sample}.")
    return selected


def _check_keys(tensors: dict, shapes: dict, kind: str, prefix: str) -> None:
    missing = [name for name in shapes if name not in tensors]
    if missing:
        hint = " (a state dict of AFTSimple has no wbias: use --kind simple)" if missing == ["wbias"] else ""
        raise ValueError(f"tensor {prefix}{missing[0]} is missing from the state dict of an aft-pytorch "
                         f"AFT{kind.capitalize()} layer{hint}; found {sorted(tensors)}.")
    unexpected = sorted(set(tensors) - set(shapes))
    if unexpected:
        hint = " (wbias belongs to AFTFull/AFTLocal: use --kind full or local)" if unexpected == ["wbias"] else ""
        raise ValueError(f"unexpected tensor {prefix}{unexpected[0]} for kind={kind!r}{hint}; an "
                         f"AFT{kind.capitalize()} layer holds exactly {sorted(shapes)} (use --prefix to pick one "
                         "layer out of a larger model).")


def _check_shapes(tensors: dict, shapes: dict, prefix: str) -> None:
    for name, shape in shapes.items():
        found = tuple(tensors[name].shape)
        if found != shape:
            raise ValueError(
                f"tensor {prefix}{name}: expected shape {shape} from dim, hidden_dim and max_seqlen, found {found}; "
                "pass the sizes the layer was built with."
            )
        if not tensors[name].is_floating_point():
            raise ValueError(f"tensor {prefix}{name} has dtype {tensors[name].dtype}; expected a floating point.")


def _kind_of(module: nn.Module) -> str:
    names = {"AFTFull": "full", "AFTSimple": "simple", "AFTLocal": "local"}
    name = type(module).__name__
    if name not in names:
        raise ValueError(f"{name} is not an aft-pytorch layer; pass an AFTFull, AFTSimple or AFTLocal module.")
    return names[name]


# ----------------------------------------------------------------------------------------------------------------
# Report and output folder
# ----------------------------------------------------------------------------------------------------------------


def _report(input_path, kind, state_dict, prefix, mixer_state, config, window, model, seed) -> dict:
    copied = {}
    for theirs, ours in _PROJECTIONS.items():
        for part in ("weight", "bias"):
            copied[f"{prefix}{theirs}.{part}"] = f"{_MIXER_PREFIX}{ours}.{part}"
    masked = {}
    if kind == "full":
        copied[f"{prefix}wbias"] = f"{_MIXER_PREFIX}position_bias"
    elif kind == "local":
        masked[f"{prefix}wbias"] = f"{_MIXER_PREFIX}position_bias (0 where |t - t'| >= {config.local_window})"
    created = sorted(k for k in model.state_dict() if not k.startswith(_MIXER_PREFIX))
    ignored = sorted(k for k in state_dict if prefix and not k.startswith(prefix))
    return {
        "source": {"package": "aft-pytorch==0.2.2", "file": str(input_path), "prefix": prefix,
                   "layer": f"AFT{kind.capitalize()}", "window": window if kind == "local" else None},
        "target": {"class": "AFTModel", "mixer": "layers.0.mixer", "aft_variant": config.aft_variant,
                   "hidden_size": config.hidden_size, "max_position_embeddings": config.max_position_embeddings,
                   "local_window": config.local_window if kind == "local" else None, "causal": False,
                   "position_bias_dim": 0},
        "copied": copied,
        "masked": masked,
        "created": {"tensors": created, "seed": seed,
                    "note": "fresh weights: only layers.0.mixer reproduces the aft-pytorch layer"},
        "ignored": ignored,
    }


def _write_folder(output_dir: Path, model: AFTModel, report: dict) -> None:
    """Write into a `.tmp-*` sibling and rename: OUT appears whole or not at all."""
    with staged_folder(output_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "conversion.json").write_text(json.dumps(report, indent=2) + "\n")


def _print_report(report: dict, output_dir) -> None:
    print(f"converted {report['source']['layer']} from {report['source']['file']} -> {output_dir}")
    for theirs, ours in report["copied"].items():
        print(f"  copied   {theirs} -> {ours}")
    for theirs, ours in report["masked"].items():
        print(f"  masked   {theirs} -> {ours}")
    print(f"  created  {len(report['created']['tensors'])} fresh tensors (seed {report['created']['seed']}): "
          "embeddings, layer norms, MLP, final norm")
    if report["ignored"]:
        print(f"  ignored  {len(report['ignored'])} tensors outside the prefix")
    print("  note: AFTModel.from_pretrained(OUT).layers[0].mixer computes what the aft-pytorch layer computed "
          "(bidirectional); the rest of the model is untrained.")


def _parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m conversion.aft_pytorch_to_aft",
        description="Convert an aft-pytorch AFTFull/AFTSimple/AFTLocal state dict (torch.save(module.state_dict())) "
        "into a Hugging Face folder holding a one-block AFTModel whose layers[0].mixer carries the converted "
        "weights (every other weight fresh). The mixer gives the same outputs as the aft-pytorch layer.",
    )
    parser.add_argument("input", help="file written by torch.save(module.state_dict())")
    parser.add_argument("output", help="new folder to write (must not exist)")
    parser.add_argument("--kind", required=True, choices=KINDS,
                        help="the aft-pytorch class: AFTFull, AFTSimple, AFTLocal")
    parser.add_argument("--dim", type=int, required=True, help="the layer's dim (model width)")
    parser.add_argument("--hidden-dim", type=int, default=DEFAULT_HIDDEN_DIM,
                        help=f"the layer's hidden_dim (default {DEFAULT_HIDDEN_DIM}, as aft-pytorch); must equal --dim")
    parser.add_argument("--max-seqlen", type=int, default=None,
                        help="the layer's max_seqlen (full/local; default: the side of wbias)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help=f"AFTLocal's s (default {DEFAULT_WINDOW}, as aft-pytorch)")
    parser.add_argument("--prefix", default="",
                        help="key prefix of the layer inside a larger state dict, e.g. 'enc.0.attn.'")
    parser.add_argument("--vocab-size", type=int, default=256,
                        help="size of the fresh token embedding (default 256 bytes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fresh weights")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    report = convert_file(
        args.input, args.output, args.kind, args.dim, args.hidden_dim, args.max_seqlen, args.window,
        args.prefix, args.vocab_size, args.seed,
    )
    _print_report(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

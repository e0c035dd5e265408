"""The options of the stage commands, defined once. `stage_options(command)` gives a command the options of its
groups and calls it with one `opts: StageOptions` (the settings the user typed, None where not given, as a
`render.resolve.Flags`).

Defaults are not decided here: the library resolves flags > the model's hyv.json > hyv's defaults
(`render.resolve`); the help texts quote hyv's defaults from `render.settings`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hunyuan_cli.common import DEFAULT_WORKDIR
from render.resolve import Flags
from render.settings import DEFAULTS

F = TypeVar("F", bound=Callable[..., Any])
_R, _E, _D, _P = DEFAULTS.render, DEFAULTS.encode, DEFAULTS.decode, DEFAULTS.render.placement
_MODEL = "or the model's"


# The help panel of each group of options.
_PANELS = {"target": "Options", "cache": "Options", "resume": "Options", "rewrite": "Rewriting"}
_PANELS |= {"decode": "Output", "placement": "Placement"}
_PANELS |= {"parallel": "Scaling", "scale": "Scaling"}


def optional(typ: Any, *names: str, help: str, **kw: Any) -> Any:
    """The annotation of an option whose value is None when not given. "[default: X]" in its help says what the
    library makes of None (escaped: rich would take it for markup)."""
    option = typer.Option(*names, help=help.replace("[", "\\["), show_default=False, **kw)
    return Annotated[typ | None, option]


def _opt(group: str, typ: Any, *names: str, help: str, **kw: Any) -> tuple[str, Any]:
    """(group, annotation) of a stage command's option."""
    return group, optional(typ, *names, help=help, rich_help_panel=_PANELS.get(group, "Sampling"), **kw)


_DTYPES = "auto (GPU: text encoders fp16, DiT bf16, VAE fp16; CPU: fp32), float32, float16, bfloat16"
_CFG = "True classifier-free guidance: > 1 runs the DiT twice a step, the second time on the negative prompt"
_W = DEFAULT_WORKDIR
_NEG = "--cfg-scale > 1"
_DEMO = "$HYV_MODEL, else the bundled demo model"

# fmt: off
OPTIONS: dict[str, tuple[str, Any]] = {
    # settings (the fields of render.resolve.Flags)
    "frames": _opt("frames", int, "--frames", help=f"Frames, 4k+1 [default: {_R.frames}, {_MODEL}]."),
    "height": _opt("render", int, "--height", help=f"Multiple of 16 [default: {_R.height}, {_MODEL}]."),
    "width": _opt("render", int, "--width", help=f"Multiple of 16 [default: {_R.width}, {_MODEL}]."),
    "size": _opt("render", str, "--size", help="Resolution preset: 720p or 540p (with --aspect)."),
    "aspect": _opt("render", str, "--aspect", help="With --size: 16:9 (default), 9:16, 4:3, 3:4 or 1:1."),
    "steps": _opt("render", int, "--steps", help=f"Denoising steps [default: {_R.steps}, {_MODEL}]."),
    "seed": _opt("render", int, "--seed", help=f"Seed of video 1; video i uses seed + i [default: {_R.seed}]."),
    "num_videos": _opt("render", int, "--num-videos", help=f"Videos per prompt [default: {_R.num_videos}]."),
    "guidance": _opt("render", float, "--guidance", help=f"Embedded guidance [default: {_R.guidance}, {_MODEL}]."),
    "shift": _opt("render", float, "--shift", help=f"Flow shift of the sigmas [default: {_R.shift}, {_MODEL}]."),
    "cfg_scale": _opt("render", float, "--cfg-scale", help=f"{_CFG} [default: {_R.cfg_scale}, off]."),
    "neg_prompt": _opt("render", str, "--negative-prompt", "--neg-prompt", help=f"With {_NEG} [default: Tencent's]."),
    "save_every": _opt("render", int, "--save-every", help="A resumable checkpoint every K steps [default: 0, off]."),
    "stop_at": _opt("render", int, "--stop-at", help="Render the first N steps (a preview); continue with --resume."),
    "text_len": _opt("encode", int, "--text-len", help=f"Llama tokens kept [default: {_E.text_len}, {_MODEL}]."),
    "fps": _opt("decode", int, "--fps", help=f"Frames per second [default: {_D.fps}, {_MODEL}]."),
    "format": _opt("decode", str, "--format", help="mp4 or png (a folder of frames) [default: mp4]."),
    "tiling": _opt("decode", bool, "--tiling/--no-tiling", help="VAE tiling [default: on]."),
    "device": _opt("placement", str, "--device", help="auto, cpu, cuda, cuda:N [default: auto]."),
    "dtype": _opt("placement", str, "--dtype", help=f"{_DTYPES} [default: {_P.dtype}]."),
    # what the stage commands have besides settings
    "model": _opt("target", str, "--model", "-m", help=f"Model dir or hub id [default: {_DEMO}]."),
    "workdir": _opt("target", Path, "--workdir", help=f"Where artifacts go [default: {_W}].", file_okay=False),
    "json_out": _opt("target", bool, "--json", help="Print one JSON object on stdout naming every artifact."),
    "no_cache": _opt("cache", bool, "--no-cache", help="Neither read nor write the embedding cache."),
    "resume": _opt("resume", bool, "--resume", help="Continue renders stopped at --stop-at past that step."),
    # prompt rewriting before encoding (run)
    "rewrite": _opt("rewrite", str, "--rewrite", help="Rewrite the prompts first: normal or director."),
    "rewrite_endpoint": _opt("rewrite", str, "--rewrite-endpoint", help="OpenAI-compatible server for --rewrite.",
                             envvar="HYV_REWRITE_ENDPOINT"),
    "rewrite_api_model": _opt("rewrite", str, "--rewrite-api-model", help="Its served model name."),
    "rewrite_model": _opt("rewrite", str, "--rewrite-model", help="A model directory: vLLM in-process."),
    # scaling out (docs/scaling.md)
    "parallel": _opt("parallel", str, "--parallel", help="One video over torchrun's ranks: ulysses:N, ring:N or "
                     "ulysses:A,ring:B (torchrun --nproc_per_node=N -m hunyuan_cli ...)."),
    "gpus": _opt("scale", int, "--gpus", help="N worker processes, one per GPU (cuda:0..N-1; with --device cpu, "
                 "N CPU workers), each with its own items."),
    "ray": _opt("scale", str, "--ray", help="Run the batch on a Ray cluster: its address, or auto "
                "(pip install 'hyv[ray]')."),
}
# fmt: on
GROUPS = {
    "encode": ("target", "cache", "frames", "encode", "placement"),
    "render": ("target", "cache", "resume", "frames", "render", "encode", "placement", "parallel"),
    "decode": ("target", "decode", "placement"),
    "run": ("target", "cache", "resume", "rewrite", "frames", "render", "encode", "decode", "placement", "parallel",
            "scale"),
}


@dataclass(frozen=True)
class Rewrite:
    mode: str
    endpoint: str | None
    api_model: str | None
    model_dir: str | None


@dataclass(frozen=True)
class StageOptions:
    flags: Flags  # the settings the user gave (None: not given)
    model: str | None = None
    workdir: Path = DEFAULT_WORKDIR
    json_out: bool = False
    use_cache: bool = True
    resume: bool = False
    rewrite: Rewrite | None = None
    parallel: str | None = None  # --parallel: context parallel under torchrun
    gpus: int | None = None  # --gpus: local worker processes
    ray: str | None = None  # --ray: a Ray cluster's address


def _build(**given: Any) -> StageOptions:
    flags = Flags(**{k: given.pop(k) for k in list(given) if OPTIONS[k][0] not in _OWN_GROUPS})
    mode = given.pop("rewrite", None)
    rw = {k.removeprefix("rewrite_"): given.pop(k) for k in list(given) if k.startswith("rewrite_")}
    return StageOptions(
        flags,
        model=given.get("model"),
        workdir=given.get("workdir") or DEFAULT_WORKDIR,
        json_out=bool(given.get("json_out")),
        use_cache=not given.get("no_cache"),
        resume=bool(given.get("resume")),
        rewrite=Rewrite(mode, rw["endpoint"], rw["api_model"], rw["model"]) if mode is not None else None,
        parallel=given.get("parallel"),
        gpus=given.get("gpus"),
        ray=given.get("ray"),
    )


_OWN_GROUPS = ("target", "cache", "resume", "rewrite", "parallel", "scale")


def stage_options(command: str) -> Callable[[F], F]:
    """Give a stage command the options of its groups, passed as one `opts: StageOptions`."""
    return bundle("opts", {n: ann for n, (g, ann) in OPTIONS.items() if g in GROUPS[command]}, _build)


def bundle(param: str, options: dict[str, Any], build: Callable[..., Any]) -> Callable[[F], F]:
    """Add `options` (name -> annotation, each defaulting to None: "not given") to a command function, and call
    it with `param=build(**their values)` instead: a long option list declared once, passed as one object."""
    kw = inspect.Parameter.KEYWORD_ONLY
    extra = [inspect.Parameter(n, kw, default=None, annotation=ann) for n, ann in options.items()]

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != param]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            return fn(**{param: build(**{n: kwargs.pop(n) for n in options})}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + extra)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
        return wrapper  # type: ignore[return-value]

    return decorate


PromptsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--prompts",
        help="A .txt (a prompt a line), .jsonl or .csv (a `prompt` column) file.",
        show_default=False,
    ),
]
PromptArgs = Annotated[list[str] | None, typer.Argument(help="Prompts (quote each one).", show_default=False)]

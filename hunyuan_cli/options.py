"""The options of the stage commands, defined once. `stage_options(command)` gives a command the options of its
groups and calls it with one `opts: StageOptions` (the settings the user typed, None where not given, as a
`render.core.resolve.Flags`).

Defaults are not decided here: the library resolves flags > the model's hyv.json > hyv's defaults
(`render.core.resolve`); the help texts quote hyv's defaults from `render.core.settings`.
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
from render.core.cachespec import CACHE_KINDS
from render.core.placement import DTYPES, GPU_DTYPES
from render.core.resolve import Flags
from render.core.settings import ATTENTION_CHOICES, DEFAULTS, OFFLOAD_MODES
from render.core.sizes import FORMS
from render.families import known_models
from render.model.ref import DEMO_DEFAULTS
from render.model.variant import DiTVariant, LoraSpec

F = TypeVar("F", bound=Callable[..., Any])
_R, _E, _D, _P = DEFAULTS.render, DEFAULTS.encode, DEFAULTS.decode, DEFAULTS.render.placement


def _dm(name: str) -> str:
    """The default of a setting a model may set: "[default: 129, or the model's (the demo model: 17)]"."""
    ours = next(getattr(o, name) for o in (_R, _E, _D) if hasattr(o, name))
    demo = DEMO_DEFAULTS.get(name)
    return f"[default: {ours}, or the model's" + (f" (the demo model: {demo})]" if demo is not None else "]")


# The help panel of each group of options (the rest: "Sampling").
_PANELS = {g: "Options" for g in ("model", "workdir", "json", "quiet", "cache", "resume", "dryrun", "plan", "image")}
_PANELS |= {"output": "Output", "video": "Output", "tiling": "Output", "rewrite": "Rewriting"}
_PANELS |= {"placement": "Placement", "offload": "Placement", "te_device": "Placement", "vae_device": "Placement"}
_PANELS |= {"weights": "Weights", "parallel": "Scaling", "scale": "Scaling", "speed": "Speed"}
_PANELS |= {"sr": "Super-resolution", "to": "Super-resolution", "srmodel": "Super-resolution"}


def optional(typ: Any, *names: str, help: str, **kw: Any) -> Any:
    """The annotation of an option whose value is None when not given. "[default: X]" in its help says what the
    library makes of None (escaped: rich would take it for markup)."""
    option = typer.Option(*names, help=help.replace("[", "\\["), show_default=False, **kw)
    return Annotated[typ | None, option]


def _opt(group: str, typ: Any, *names: str, help: str, **kw: Any) -> tuple[str, Any]:
    """(group, annotation) of a stage command's option."""
    return group, optional(typ, *names, help=help, rich_help_panel=_PANELS.get(group, "Sampling"), **kw)


_SHORT = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
_GPU = ", ".join(f"{w} {_SHORT[GPU_DTYPES[s]]}" for s, w in (("encode", "text encoders"), ("render", "DiT"),
                                                         ("decode", "VAE")))  # fmt: skip
_DTYPES = f"auto (GPU: {_GPU}; CPU: fp32), {', '.join(DTYPES)}"
_CFG = "True classifier-free guidance: > 1 runs the DiT twice a step, the second time on the negative prompt"
_W = DEFAULT_WORKDIR
_VALUED = {"fbcache": "[:T]", "teacache": "[:T]", "magcache": "[:T]", "taylorseer": "[:N]"}
_CACHE = (f"A step cache: {', '.join(k + _VALUED.get(k, '') for k in CACHE_KINDS)}; no T: the calibrated or "
          "published threshold [default: none].")
_ATTENTION = ("auto (the fastest installed kernel, padding dropped), masked (diffusers' own), "
              f"{', '.join(c for c in ATTENTION_CHOICES if c not in ('auto', 'masked', '_native_cudnn'))} "
              "[default: auto].")
_NEG = "--cfg-scale > 1"
_DEMO = "$HYV_MODEL, else the bundled demo model"
_MODEL = "A model folder, or a released model's name or hub id."
_NAMES = f"a released model by hub id or name (its configs ship with hyv): {known_models()}"
_MODES = {"group": "group (DiT blocks stream)", "sequential": "sequential (layers stream)"}
_OFFLOAD = f"Where weights wait: {', '.join(_MODES.get(m, m) for m in OFFLOAD_MODES)}"
_FP8 = "DiT weights in fp8 (Tencent's scaled fp8 file when the model has one, else fp8 storage)."
_DIT = "A DiT file replacing the model's: .gguf (city96), or an original-layout .pt/.safetensors."

# fmt: off
OPTIONS: dict[str, tuple[str, Any]] = {
    # settings (the fields of render.core.resolve.Flags)
    "frames": _opt("frames", int, "--frames", help=f"Frames, 4k+1 {_dm('frames')}."),
    "height": _opt("size", int, "--height", help=f"Multiple of 16 {_dm('height')}."),
    "width": _opt("size", int, "--width", help=f"Multiple of 16 {_dm('width')}."),
    "size": _opt("size", str, "--size", help="Preset, with --aspect: 720p, 540p (HunyuanVideo); 480p, 720p (1.5)."),
    "aspect": _opt("size", str, "--aspect", help="With --size: 16:9 (default), 9:16, 4:3, 3:4 or 1:1."),
    "steps": _opt("sampling", int, "--steps", help=f"Denoising steps {_dm('steps')}."),
    "seed": _opt("sampling", str, "--seed", help=f"Seed of video 1, or random; video i: seed + i [default: {_R.seed}].",
                 metavar="N|random"),
    "num_videos": _opt("sampling", int, "--num-videos", help=f"Videos per prompt [default: {_R.num_videos}]."),
    "guidance": _opt("sampling", float, "--guidance", help=f"Embedded guidance {_dm('guidance')}."),
    "shift": _opt("sampling", float, "--shift", help=f"Flow shift of the sigmas {_dm('shift')}."),
    "cfg_scale": _opt("sampling", float, "--cfg-scale", help=f"{_CFG} [default: {_R.cfg_scale}, off]."),
    "neg_prompt": _opt("sampling", str, "--negative-prompt", help=f"With {_NEG} (also --neg-prompt) "
                       "[default: Tencent's]."),
    "neg_prompt_alias": _opt("sampling", str, "--neg-prompt", help="--negative-prompt", hidden=True),
    "save_every": _opt("checkpoints", int, "--save-every",
                       help="A resumable checkpoint every K steps [default: 0, off]."),
    "stop_at": _opt("checkpoints", int, "--stop-at",
                    help="Render the first N steps (a preview); continue with --resume."),
    "text_len": _opt("encode", int, "--text-len", help=f"Llama tokens kept {_dm('text_len')}."),
    "fps": _opt("video", int, "--fps", help=f"Frames per second {_dm('fps')}."),
    "format": _opt("video", str, "--format", help="mp4 or png (a folder of frames) [default: mp4]."),
    "tiling": _opt("tiling", bool, "--tiling/--no-tiling", help="VAE tiling [default: on]."),
    "device": _opt("placement", str, "--device", help="auto, cpu, cuda, cuda:N [default: auto]."),
    "dtype": _opt("placement", str, "--dtype", help=f"{_DTYPES} [default: {_P.dtype}]."),
    # what the stage commands have besides settings
    "model": _opt("model", str, "--model", "-m", help=f"{_MODEL} [default: {_DEMO}]."),
    "workdir": _opt("workdir", Path, "--workdir", help=f"Where artifacts go [default: {_W}].", metavar="DIR"),
    "json_out": _opt("json", bool, "--json", help="Print one JSON object on stdout naming every artifact."),
    "quiet": _opt("quiet", bool, "--quiet", "-q", help="Print only the paths made, one a line (for scripts)."),
    "output": _opt("output", Path, "--output", "-o", help="Where the one video goes [default: WORKDIR/videos/]."),
    "no_cache": _opt("cache", bool, "--no-cache", help="Neither read nor write the embedding cache."),
    "image": _opt("image", Path, "--image", help="The first frame (image-to-video models): an image file; every prompt "
                  "given as an argument, and every batch item without an `image`, starts from it.", metavar="FILE"),
    "resume": _opt("resume", bool, "--resume", help="Continue renders stopped at --stop-at past that step."),
    # prompt rewriting before encoding (run)
    "rewrite": _opt("rewrite", str, "--rewrite", help="Rewrite the prompts first: normal or director."),
    "rewrite_endpoint": _opt("rewrite", str, "--rewrite-endpoint", help="OpenAI-compatible server for --rewrite.",
                             envvar="HYV_REWRITE_ENDPOINT"),
    "rewrite_api_model": _opt("rewrite", str, "--rewrite-api-model", help="Its served model name."),
    "rewrite_model": _opt("rewrite", str, "--rewrite-model", help="A model directory: vLLM in-process."),
    # memory: offloading and per-stage devices (settings), the DiT's weight variant (engine)
    "offload": _opt("offload", str, "--offload", help=f"{_OFFLOAD} [default: none]."),
    "text_encoder_device": _opt("te_device", str, "--text-encoder-device", help="The encode stage's device."),
    "vae_device": _opt("vae_device", str, "--vae-device", help="The decode stage's device."),
    "fp8": _opt("weights", bool, "--fp8", help=_FP8),
    "dit": _opt("weights", Path, "--dit", help=_DIT, dir_okay=False),
    "lora": _opt("weights", list[str], "--lora", help="A LoRA for the DiT (repeatable).", metavar="FILE[:SCALE]"),
    "dry_run": _opt("dryrun", bool, "--dry-run", help="Print the memory plan and exit (nothing loads)."),
    "memory": _opt("plan", str, "--memory", help=f"Free device memory to plan for, with its unit: {FORMS} "
                   "[default: the device's free memory]."),
    # speed (docs/speed.md)
    "cache": _opt("speed", str, "--cache", help=_CACHE, metavar="KIND[:T]"),
    "cache_quality": _opt("speed", str, "--cache-quality", help="Take the threshold `hyv calibrate` chose for this "
                          "PSNR, e.g. 30db [default: 30db when calibrated]."),
    "attention": _opt("speed", str, "--attention", help=_ATTENTION),
    "compile": _opt("speed", bool, "--compile", help="torch.compile the DiT's repeated blocks (regional)."),
    # super-resolution between render and decode (docs/super-resolution.md)
    "sr": _opt("sr", str, "--sr", help="Upscale before decoding: 720p (from 480p videos) or 1080p (from 720p ones), "
               "with the model's SR weights [default: off].", metavar="720p|1080p"),
    "to": _opt("to", str, "--to", help="The target: 720p (takes 480p latents) or 1080p (takes 720p latents).",
               metavar="720p|1080p"),
    "sr_model": _opt("srmodel", Path, "--sr-model", help="Folder of the SR models (Tencent's transformer/"
                     "<v>_sr_distilled + upsampler/, or hyv's sr-<target>/) [default: the model's folder].",
                     metavar="DIR"),
    # scaling out (docs/scaling.md)
    "parallel": _opt("parallel", str, "--parallel", help="One video over torchrun's ranks: ulysses:N, ring:N or "
                     "ulysses:A,ring:B (torchrun --nproc_per_node=N -m hunyuan_cli ...)."),
    "gpus": _opt("scale", int, "--gpus", help="N worker processes, one per GPU (cuda:0..N-1; with --device cpu, "
                 "N CPU workers), each with its own items."),
    "ray": _opt("scale", str, "--ray", help="Run the batch on a Ray cluster: its address, or auto "
                "(pip install 'hyv[ray]')."),
}
# fmt: on
_TARGET = ("model", "workdir", "json", "quiet")
_PLACE = ("placement", "offload")
# The groups of options each command takes: only what changes what it does (`hyv plan` makes no artifact and
# shows every offload mode: no seed, fps, checkpoints, work directory, --quiet or --offload).
GROUPS = {
    "encode": (*_TARGET, "cache", "image", "frames", "size", "encode", *_PLACE, "te_device"),
    "render": (*_TARGET, "cache", "resume", "frames", "size", "sampling", "checkpoints", "speed", "encode",
               *_PLACE, "te_device", "parallel", "weights"),
    "decode": (*_TARGET, "output", "video", "tiling", *_PLACE, "vae_device"),
    "run": (*_TARGET, "output", "cache", "resume", "rewrite", "image", "frames", "size", "sampling", "checkpoints",
            "speed", "encode", "sr", "srmodel", "video", "tiling", *_PLACE, "te_device", "vae_device", "parallel",
            "scale", "weights", "dryrun", "plan"),
    "plan": ("model", "json", "frames", "size", "encode", "sr", "srmodel", "tiling", "placement", "te_device",
             "vae_device", "weights", "plan"),
    # upscale: its own options and, of the others, the render settings it uses (by name)
    "upscale": (*_TARGET, "to", "srmodel", *_PLACE, "save_every", "attention"),
    "calibrate": ("model", "json", "frames", "size", "sampling", "encode", "tiling", "placement", "te_device",
                  "vae_device"),
}  # fmt: skip
# Where a command reads an option differently: its own help text.
_HELP_OPTIONS = {
    ("plan", "device"): _opt("placement", str, "--device", help="auto, cpu, cuda, cuda:N [default: cuda: a plan "
                             "for a CUDA GPU (its dtypes), whether or not one is here; cpu: this machine's run].")[1],
    ("plan", "model"): _opt("model", str, "--model", "-m", help=f"{_MODEL} Offline: a folder of configs, or {_NAMES} "
                            f"[default: {_DEMO}].")[1],
}  # fmt: skip


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
    quiet: bool = False
    output: Path | None = None
    image: Path | None = None  # --image: the first frame of every item that has none
    use_cache: bool = True
    resume: bool = False
    rewrite: Rewrite | None = None
    fp8: bool = False
    dit: Path | None = None
    loras: tuple[str, ...] = ()  # FILE[:SCALE] as typed
    dry_run: bool = False
    memory: str | None = None  # hyv plan --memory
    parallel: str | None = None  # --parallel: context parallel under torchrun
    gpus: int | None = None  # --gpus: local worker processes
    ray: str | None = None  # --ray: a Ray cluster's address
    sr_model: Path | None = None  # --sr-model: where the super-resolution models are

    def variant(self) -> DiTVariant:
        """The DiT's weight variant (LoRA files checked here, inside the command's error reporting)."""
        return DiTVariant(self.fp8, self.dit, tuple(LoraSpec.parse(x) for x in self.loras))


def _build(**given: Any) -> StageOptions:
    if given.get("to") is not None:  # `hyv upscale --to`: the same setting as `hyv run --sr`
        given["sr"] = given["to"]
    given.pop("to", None)
    alias = given.pop("neg_prompt_alias", None)  # --neg-prompt: the short spelling of --negative-prompt
    if alias is not None and given.get("neg_prompt") is None:
        given["neg_prompt"] = alias
    flags = Flags(**{k: given.pop(k) for k in list(given) if OPTIONS[k][0] not in _OWN_GROUPS})
    weights = {k: given.pop(k, None) for k in ("fp8", "dit", "lora")}
    mode = given.pop("rewrite", None)
    rw = {k.removeprefix("rewrite_"): given.pop(k) for k in list(given) if k.startswith("rewrite_")}
    return StageOptions(
        flags,
        model=given.get("model"),
        workdir=given.get("workdir") or DEFAULT_WORKDIR,
        json_out=bool(given.get("json_out")),
        quiet=bool(given.get("quiet")),
        output=given.get("output"),
        image=given.get("image"),
        use_cache=not given.get("no_cache"),
        resume=bool(given.get("resume")),
        rewrite=Rewrite(mode, rw["endpoint"], rw["api_model"], rw["model"]) if mode is not None else None,
        fp8=bool(weights["fp8"]),
        dit=weights["dit"],
        loras=tuple(weights["lora"] or ()),
        dry_run=bool(given.get("dry_run")),
        memory=given.get("memory"),
        parallel=given.get("parallel"),
        gpus=given.get("gpus"),
        ray=given.get("ray"),
        sr_model=given.get("sr_model"),
    )


_OWN_GROUPS = ("model", "workdir", "json", "quiet", "cache", "resume", "rewrite", "output", "weights", "dryrun",
               "plan", "parallel", "scale", "image", "srmodel")  # fmt: skip


def stage_options(command: str) -> Callable[[F], F]:
    """Give a stage command the options of its groups, passed as one `opts: StageOptions`."""
    wanted = GROUPS[command]
    chosen = {n: _HELP_OPTIONS.get((command, n), ann) for n, (g, ann) in OPTIONS.items() if g in wanted or n in wanted}
    return bundle("opts", chosen, _build)


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
PromptArgs = Annotated[
    list[str] | None, typer.Argument(help="Prompts (quote each one).", show_default=False, metavar="PROMPT")
]

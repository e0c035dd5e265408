"""`hyv models check | convert | prepare-text-encoder | download`: the weight files users have, checked, converted,
fetched. Registered on admin.models_app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hunyuan_cli.admin import models_app
from hunyuan_cli.common import JsonOpt, emit_json, quiet_libraries, reported_errors

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace a non-empty destination.")]
FamilyOpt = Annotated[str, typer.Option("--family", help="The model family: HunyuanVideo.")]


@models_app.command("check")
def check(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model directory or hub id.")] = None,
    directory: Annotated[
        str | None, typer.Argument(help="Model directory (or give --model).", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Which layout, and which components are present, missing or corrupt (truncated files, tensors that do not fit
    the config), the super-resolution models in the folder included. Reads headers only."""
    with reported_errors():
        from render.core.errors import ModelNotFoundError, WeightsError
        from render.families import family_of, resolve_model, upscaler_family
        from render.model.check import check_component, check_upscaler
        from render.model.ref import ModelRef
        from render.model.variant import DiTVariant

        quiet_libraries()
        spec = directory or model
        try:
            ref = resolve_model(spec)
            family = family_of(ref)
            names = [n for stage in family.components_for(ref).values() for n in stage]
            statuses = [check_component(ref, family, n, DiTVariant()) for n in dict.fromkeys(names)]
            layout = ref.layout
        except ModelNotFoundError:  # a folder of super-resolution models only
            found = upscaler_family(Path(spec)) if spec and Path(spec).is_dir() else None
            if found is None or spec is None:
                raise
            family, ref, statuses, layout = found, ModelRef(Path(spec), spec), [], "super-resolution models only"
        for target in family.upscalers_in(ref.path):
            up = family.find_upscaler(ref, target, ref.path)
            statuses += check_upscaler(family, up)
        ok = all(s.state == "ok" for s in statuses)
        info: dict[str, Any] = {
            "path": str(ref.path), "source": ref.source, "layout": layout, "family": family.name,
        }  # fmt: skip
        if ok and statuses and not statuses[0].name.startswith("sr "):
            tr = family.config(ref, "transformer")
            info["layers"] = [tr.get("num_layers"), tr.get("num_single_layers")]
            info["text_dim"] = tr.get("text_embed_dim")
        info["super_resolution"] = sorted(family.upscalers_in(ref.path))
        if json_out:
            rows = [vars(s) for s in statuses]
            emit_json({"command": "models check", **info, "components": rows, "ok": ok})
        else:
            typer.echo(f"{ref.source} ({ref.path}): {family.name}, {layout}{'' if ' ' in layout else ' layout'}")
            for s in statuses:
                size = f", {s.bytes / 1e9:.2f} GB" if s.bytes else ""
                typer.echo(f"  {s.name:15} {s.state}{size}{': ' + s.detail if s.detail else ''}")
            if ok and "layers" in info:
                double, single = info["layers"]
                blocks = f"{double} double-stream" + (f" + {single} single-stream" if single else "")
                typer.echo(
                    f"ok: every component is present and fits its config; DiT {blocks} blocks, "
                    f"text dim {info['text_dim']}"
                )
            elif ok:
                typer.echo(f"ok: super-resolution {', '.join(info['super_resolution'])}")
        if not ok:
            bad = [s for s in statuses if s.state != "ok"]
            raise WeightsError(f"{len(bad)} component(s) missing or corrupt: {', '.join(s.name for s in bad)}")


@models_app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="A model in Tencent's original layout (ckpts/).")],
    dst: Annotated[Path, typer.Argument(help="Where to write the diffusers layout.")],
    shard: Annotated[str, typer.Option("--max-shard-size", help="Largest safetensors shard.")] = "5GB",
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write an original-layout model in the diffusers layout (sharded safetensors) so later runs load fast; its
    super-resolution models (or a folder holding only those) in hyv's layout (DST/sr-<target>/)."""
    with reported_errors():
        from render.core.errors import ModelNotFoundError
        from render.families import family_of, resolve_model, upscaler_family
        from render.model.convert import convert_model, convert_upscalers
        from render.model.ref import ORIGINAL

        quiet_libraries()
        try:
            ref = resolve_model(src)
        except ModelNotFoundError:
            ref = None
            if upscaler_family(src) is None:
                raise
        what = "the diffusers layout"
        if ref is not None and (ref.layout == ORIGINAL or upscaler_family(src) is None):
            out = convert_model(ref, family_of(ref), dst, force=force, max_shard_size=shard)
        else:
            fam = upscaler_family(src)
            assert fam is not None
            done = convert_upscalers(src, fam, dst, force=force, max_shard_size=shard)
            out = dst
            what = f"the super-resolution models ({', '.join(done)}) in hyv's layout"
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        if json_out:
            emit_json({"command": "models convert", "path": str(out), "bytes": size})
        else:
            typer.echo(f"wrote {what} ({size / 1e9:.2f} GB) to {out}")


@models_app.command("prepare-text-encoder")
def prepare_text_encoder(
    src: Annotated[
        Path,
        typer.Argument(help="The family's vision-language checkpoint (HunyuanVideo: xtuner/llava-llama-3-8b-v1_1-…)."),
    ],
    dst: Annotated[Path, typer.Argument(help="Where to write the text encoder (e.g. ckpts/text_encoder).")],
    family: FamilyOpt = "HunyuanVideo",
    dtype: Annotated[str, typer.Option("--dtype", help="float16 (upstream's), bfloat16 or float32.")] = "float16",
    shard: Annotated[str, typer.Option("--max-shard-size", help="Largest output shard.")] = "2GB",
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The language model and tokenizer out of the family's vision-language checkpoint, on the CPU, one shard in
    memory at a time (upstream's scripts need GPU 0)."""
    with reported_errors():
        from render.families import family_named

        quiet_libraries()
        out = family_named(family).prepare_text_encoder(src, dst, dtype_name=dtype, force=force)
        if json_out:
            emit_json({"command": "models prepare-text-encoder", "path": str(out)})
        else:
            typer.echo(f"wrote the text encoder and its tokenizer to {out}")


@models_app.command("download")
def download(
    directory: Annotated[Path, typer.Argument(help="Where the model goes.")],
    layout: Annotated[str, typer.Option("--layout", help="diffusers or original.")] = "diffusers",
    fp8: Annotated[bool, typer.Option("--fp8", help="Original layout: Tencent's fp8 DiT and scales.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before downloading.")] = False,
    family: FamilyOpt = "HunyuanVideo",
    sr: Annotated[
        list[str] | None,
        typer.Option("--sr", help="Only the super-resolution model of a target (720p, 1080p; repeatable), in the "
                     "family's original layout, loaded in place.", metavar="TARGET"),
    ] = None,
) -> None:
    """Fetch the weights through huggingface_hub: sizes first, then a resumable download."""
    with reported_errors():
        from render.families import family_named
        from render.model.download import download as fetch
        from render.model.download import planned_sizes

        fam = family_named(family)
        fetches = fam.upscaler_fetch_list(tuple(sr)) if sr else fam.fetch_list(layout, fp8)
        sizes = planned_sizes(fetches)
        for f, n, b in sizes:
            typer.echo(f"{f.repo}: {n} files, {b / 1e9:.1f} GB -> {directory / f.subdir}")
        total = sum(b for _, _, b in sizes)
        typer.echo(f"total {total / 1e9:.1f} GB ({total / 2**30:.1f} GiB)")
        if not yes and not typer.confirm("download?", default=True):
            raise typer.Exit(1)
        fetch(directory, fam, fetches, typer.echo)

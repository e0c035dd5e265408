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
    the config). Reads headers only."""
    with reported_errors():
        from render.core.errors import WeightsError
        from render.families import family_of, resolve_model
        from render.model.check import check_component
        from render.model.variant import DiTVariant

        quiet_libraries()
        ref = resolve_model(directory or model)
        family = family_of(ref)
        names = [n for stage in family.stage_components.values() for n in stage]
        statuses = [check_component(ref, family, n, DiTVariant()) for n in dict.fromkeys(names)]
        ok = all(s.state == "ok" for s in statuses)
        info: dict[str, Any] = {
            "path": str(ref.path), "source": ref.source, "layout": ref.layout, "family": family.name,
        }  # fmt: skip
        if ok:
            tr = family.config(ref, "transformer")
            info["layers"] = [tr.get("num_layers"), tr.get("num_single_layers")]
            info["text_dim"] = tr.get("text_embed_dim")
        if json_out:
            rows = [vars(s) for s in statuses]
            emit_json({"command": "models check", **info, "components": rows, "ok": ok})
        else:
            typer.echo(f"{ref.source} ({ref.path}): {family.name}, {ref.layout} layout")
            for s in statuses:
                size = f", {s.bytes / 1e9:.2f} GB" if s.bytes else ""
                typer.echo(f"  {s.name:15} {s.state}{size}{': ' + s.detail if s.detail else ''}")
            if ok:
                typer.echo(
                    f"ok: every component is present and fits its config; DiT {info['layers'][0]} double + "
                    f"{info['layers'][1]} single blocks, text dim {info['text_dim']}"
                )
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
    """Write an original-layout model in the diffusers layout (sharded safetensors) so later runs load fast."""
    with reported_errors():
        from render.families import family_of, resolve_model
        from render.model.convert import convert_model

        quiet_libraries()
        ref = resolve_model(src)
        out = convert_model(ref, family_of(ref), dst, force=force, max_shard_size=shard)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        if json_out:
            emit_json({"command": "models convert", "path": str(out), "bytes": size})
        else:
            typer.echo(f"wrote the diffusers layout ({size / 1e9:.2f} GB) to {out}")


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
) -> None:
    """Fetch the weights through huggingface_hub: sizes first, then a resumable download."""
    with reported_errors():
        from render.families import family_named
        from render.model.download import download as fetch
        from render.model.download import planned_sizes

        fam = family_named(family)
        fetches = fam.fetch_list(layout, fp8)
        sizes = planned_sizes(fetches)
        for f, n, b in sizes:
            typer.echo(f"{f.repo}: {n} files, {b / 1e9:.1f} GB -> {directory / f.subdir}")
        total = sum(b for _, _, b in sizes)
        typer.echo(f"total {total / 1e9:.1f} GB ({total / 2**30:.1f} GiB)")
        if not yes and not typer.confirm("download?", default=True):
            raise typer.Exit(1)
        fetch(directory, fam, fetches, typer.echo)

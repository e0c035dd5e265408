"""The orchestration behind `Engine.encode/render/decode/run`: items in, a report of outcomes out.

One implementation of what every front end needs: per-item settings (a bad one fails its item, not the batch),
one outcome per seed, negative prompts for true CFG (encoded with the text settings of the embeddings they go
with, so `encode` + `render` equals `run`), skips, locks and per-item failures. `run` is stage-major: every
encode (negative prompts included), then every render, then every decode, each stage's models freed after it
under the engine's default policy, so peak memory is the largest stage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from render.core.errors import SettingsError, UsageError
from render.core.items import Item, Outcome, Report
from render.core.placement import check_devices
from render.core.progress import Progress
from render.core.settings import EncodeSettings, RenderSettings, Settings
from render.files.artifacts import read_manifest
from render.files.workdir import Workdir
from render.run import runindex, stageindex
from render.run.firstframes import encode_images, first_frame, given_image
from render.run.session import Session
from render.run.spec import RunRequest, begin
from render.run.upscaling import check_upscale, upscale_stage
from render.stages.decode import DecodeJob, check_latents_file, check_output, decode_jobs
from render.stages.encode import EncodeJob, encode_jobs, find_existing, plan_job
from render.stages.images import ImageJob
from render.stages.render import RenderJob, render_jobs
from render.stages.upscale import UpscaleJob


@dataclass
class _Prepared:
    """An item ready to render: its embeddings, settings and the text settings they were encoded with."""

    item: Item
    settings: RenderSettings
    text: EncodeSettings  # what its negative prompt is encoded with
    embeddings: Path | None = None
    key: str | None = None
    cached: bool = False
    label: str = ""
    image: ImageJob | None = None  # image-to-video: the first frame's job (its artifact, once encoded)
    given_image: Path | None = None  # or, for embeddings given to `render`, the artifact they go with


def encode(engine: Session, req: RunRequest) -> Report:
    items, settings, progress = req.items, req.settings, req.progress
    wd, use_cache = begin(req)
    if (done := stageindex.lookup(engine, "encode", items, settings, wd)) is not None:
        return done  # every prompt's embeddings are there and whole: nothing loaded, not even torch
    check_devices(settings, "encode")
    report = Report()
    jobs: list[EncodeJob] = []
    images: list[ImageJob] = []
    for item in items:
        s = _item_settings(item, settings, report)
        if s is None:
            continue
        if item.prompt is None:
            _failed(item, settings, report, "nothing to encode: the item has no prompt")
            continue
        try:
            s, image = first_frame(engine, item, s, settings, wd)
        except UsageError as exc:
            _failed(item, settings, report, str(exc))
            continue
        out = Outcome(item, prompt=item.prompt)
        report.outcomes.append(out)
        jobs.append(EncodeJob(item.prompt, s.frames, settings.encode, out, image=image))
        images += [image] if image is not None else []
    _encode(engine, jobs, wd, use_cache, progress, report)
    encode_images(engine, images, settings, wd, use_cache, progress)
    for job in jobs:
        if job.image is not None and job.image.status == "failed":
            job.out.fail(f"encoding the first frame failed: {job.image.error}")
        job.out.path = job.out.embeddings
    stageindex.record(engine, "encode", report, settings, wd)
    return report


def render(engine: Session, req: RunRequest) -> Report:
    items, settings, resume, progress = req.items, req.settings, req.resume, req.progress
    (wd, use_cache), report = begin(req), Report()
    if not resume and (done := stageindex.lookup(engine, "render", items, settings, wd)) is not None:
        return done  # every video's latents are there and whole
    check_devices(settings, "render")
    engine.require("render")
    prepared = [
        p for item in items if (p := _prepare_given(engine, item, settings, wd, use_cache, report, progress))
    ]
    _check_fits(engine, prepared, settings)
    negatives = _negative_jobs(engine, prepared)
    _encode(engine, list(negatives.values()), wd, use_cache, progress, report)
    _render(engine, prepared, negatives, wd, resume, progress, report)
    for out in report.outcomes:
        out.path = out.latents if out.status in ("done", "skipped") else None
    stageindex.record(engine, "render", report, settings, wd)
    return _in_item_order(report, items)


def decode(engine: Session, req: RunRequest) -> Report:
    items, settings, progress = req.items, req.settings, req.progress
    wd, _ = begin(replace(req, use_cache=False))
    if (done := stageindex.decoded(items, settings, wd)) is not None:
        return done  # every video is there, whole, made from these latents with these settings
    check_devices(settings, "decode")
    report = Report()
    jobs: list[DecodeJob] = []
    for item in items:
        out = Outcome(item)
        report.outcomes.append(out)
        if item.latents is None:
            out.fail("nothing to decode: the item has no latents")
            continue
        check_latents_file(item.latents, settings.decode)  # every input checked before the VAE loads
        if item.output is not None:
            check_output(item.output, settings.decode)
        out.latents = item.latents
        jobs.append(DecodeJob(item.latents, out))
    _decode(engine, jobs, settings, wd, progress)
    for out in report.outcomes:
        out.path = out.video
    return report


def run(engine: Session, req: RunRequest) -> Report:
    items, settings, resume, progress = req.items, req.settings, req.resume, req.progress
    (wd, use_cache), report = begin(req), Report()
    if not resume and (done := runindex.lookup(engine, items, settings, wd)) is not None:
        return done  # every video is there and whole: nothing loaded, not even torch
    check_devices(settings, "encode", "render", "decode")
    engine.require(*engine.family.components_for(engine.model))  # a missing VAE: said before hours of rendering
    prepared, jobs = _run_jobs(engine, items, settings, report, wd, outputs=True)
    _check_fits(engine, prepared, settings)
    check_upscale(engine, [(p.settings.height, p.settings.width) for p in prepared], settings)  # before any work
    negatives = _negative_jobs(engine, prepared)
    _encode(engine, jobs + list(negatives.values()), wd, use_cache, progress, report)
    encode_images(engine, [p.image for p in prepared if p.image], settings, wd, use_cache, progress)
    _encoded(prepared, jobs, report)
    _render(
        engine, [p for p in prepared if p.embeddings is not None], negatives, wd, resume, progress, report
    )
    if settings.upscale.sr is not None:  # the base videos' latents -> the upscaled ones, which are decoded
        labels = {id(p.item): p.label for p in prepared}
        finished = [o for o in report.outcomes if o.status in ("done", "skipped") and o.latents is not None]
        up = [UpscaleJob(o.latents, o, labels.get(id(o.item)), o.embeddings) for o in finished if o.latents]
        upscale_stage(engine, up, settings, wd, progress)
    to_decode: list[DecodeJob] = []
    for out in report.outcomes:
        if out.status in ("done", "skipped") and out.latents is not None:
            to_decode.append(DecodeJob(out.latents, out))
        elif out.status == "stopped" and out.preview is not None:
            to_decode.append(DecodeJob(out.preview, out))
    stopped = {id(o) for o in report.outcomes if o.status == "stopped"}
    _decode(engine, to_decode, settings, wd, progress)
    for out in report.outcomes:
        if id(out) in stopped and out.status != "failed":
            out.status = "stopped"  # the video is a preview
        out.path = out.video
    runindex.record(engine, report, settings, wd)
    return _in_item_order(report, items)


# ---------------------------------------------------------------------------------------------- the stages


def _encode(
    engine: Session, jobs: list[EncodeJob], wd: Workdir, use_cache: bool, progress: Progress, report: Report
) -> None:
    if not jobs:
        return
    try:
        encode_jobs(engine.encode_stage(), jobs, wd, use_cache=use_cache, progress=progress)
    finally:
        engine.stage_done("encode")
    report.encodes += sum(1 for j in jobs if j.out.status == "done")
    report.cache_hits += sum(1 for j in jobs if j.out.status == "cached")


def _check_fits(engine: Session, prepared: list[_Prepared], settings: Settings) -> None:
    """Every distinct size is checked against its device, and the speed settings against what is installed and
    calibrated, before any model loads."""
    from render.stages.fits import check_fits

    engine.concrete(settings.render)
    for s in {replace(p.settings, seed=0, num_videos=1, neg_prompt=None) for p in prepared}:
        check_fits(engine.dit_info(), s, settings.encode.text_len)


def _render(
    engine: Session,
    prepared: list[_Prepared],
    negatives: dict[tuple[str, str, EncodeSettings], EncodeJob],
    wd: Workdir,
    resume: bool,
    progress: Progress,
    report: Report,
) -> None:
    """One render job per (item, seed); its outcome joins the report in item order."""
    jobs: list[RenderJob] = []
    for p in prepared:
        assert p.embeddings is not None
        for v in p.settings.videos():
            out = Outcome(p.item, seed=v.seed, embeddings=p.embeddings, key=p.key, cached=p.cached)
            report.outcomes.append(out)
            try:
                s = engine.concrete(v)  # its cache threshold filled in, its attention resolved
            except SettingsError as exc:
                out.fail(str(exc), bad_input=True)
                continue
            neg = negatives.get(_negative_key(engine, s, p.text)) if s.negative_prompt is not None else None
            if neg is not None and neg.out.status == "failed":
                out.fail(f"encoding the negative prompt failed: {neg.out.error}")
                continue
            image = p.image.path if p.image is not None else p.given_image
            jobs.append(RenderJob(p.embeddings, s, p.label, out, neg.out.embeddings if neg else None, image))
    if not jobs:
        return
    try:
        render_jobs(engine.render_context(), jobs, wd, resume=resume, progress=progress)
    finally:
        engine.stage_done("render")


def _decode(
    engine: Session, jobs: list[DecodeJob], settings: Settings, wd: Workdir, progress: Progress
) -> None:
    if not jobs:
        return
    try:
        decode_jobs(engine.decode_context(), jobs, settings.decode, wd, progress=progress)
    finally:
        engine.stage_done("decode")


# ---------------------------------------------------------------------------------------------- items


def _in_item_order(report: Report, items: list[Item]) -> Report:
    """Outcomes in the order of their items (and of the seeds within an item), failures included."""
    order = {id(item): n for n, item in enumerate(items)}
    report.outcomes.sort(key=lambda o: order.get(id(o.item), len(items)))
    return report


def _item_settings(item: Item, settings: Settings, report: Report) -> RenderSettings | None:
    """The item's render settings (its overrides on the resolved ones); a bad override fails the item."""
    try:
        return settings.render.with_overrides(item.overrides)
    except SettingsError as exc:
        _failed(item, settings, report, str(exc))
        return None


def _failed(item: Item, settings: Settings, report: Report, message: str) -> None:
    out = Outcome(item, seed=int(item.overrides.get("seed", settings.render.seed)), prompt=item.prompt)
    out.fail(message, bad_input=True)
    report.outcomes.append(out)


def _prepare_given(
    engine: Session,
    item: Item,
    settings: Settings,
    wd: Workdir,
    use_cache: bool,
    report: Report,
    progress: Progress,
) -> _Prepared | None:
    """An item to render: its embeddings given (checked now, before any model loads) or found by its prompt's
    content key in the workdir or the cache (no text encoder loads). Failures join the report."""
    s = _item_settings(item, settings, report)
    if s is None:
        return None
    if item.embeddings is None and item.prompt is None:
        _failed(item, settings, report, "nothing to render: the item has no embeddings")
        return None
    if item.embeddings is not None:
        _, m = read_manifest(item.embeddings, "embeddings")
        text = replace(settings.encode, **{k: m[k] for k in settings.encode.text_record() if k in m})
        label = item.name or m.get("prompt") or item.embeddings.stem
        given, s = given_image(item.embeddings, m, s)
        return _Prepared(item, s, text, item.embeddings, m.get("cache_key"), False, label, given_image=given)
    assert item.prompt is not None
    try:
        s, image = first_frame(engine, item, s, settings, wd)
    except UsageError as exc:
        _failed(item, settings, report, str(exc))
        return None
    job = EncodeJob(item.prompt, s.frames, settings.encode, Outcome(item), image=image)
    plan_job(engine.encode_stage(), job, wd)
    if not find_existing(job, use_cache, progress):
        out = Outcome(item, seed=s.seed, prompt=item.prompt)
        out.fail(
            "not encoded yet; run `hyv encode` on these prompts first (same model and --frames)",
            bad_input=True,
        )
        report.outcomes.append(out)
        return None
    assert job.out.embeddings is not None
    _, m = read_manifest(job.out.embeddings, "embeddings")
    given, s = given_image(job.out.embeddings, m, s, image.path if image is not None else None)
    return _Prepared(item, s, settings.encode, job.out.embeddings, job.out.key, True, item.label, given_image=given)


def _negative_key(engine: Session, s: RenderSettings, text: EncodeSettings) -> tuple[str, str, EncodeSettings]:
    assert s.negative_prompt is not None
    return (s.negative_prompt, engine.encode_stage().template(s.frames).name, text)


def _negative_jobs(
    engine: Session, prepared: list[_Prepared]
) -> dict[tuple[str, str, EncodeSettings], EncodeJob]:
    """One encode job per distinct negative prompt, template and text settings among the items with true CFG."""
    jobs: dict[tuple[str, str, EncodeSettings], EncodeJob] = {}
    for p in prepared:
        s = p.settings
        if s.negative_prompt is not None and (key := _negative_key(engine, s, p.text)) not in jobs:
            item = Item(prompt=s.negative_prompt, source="negative prompt", name="negative")
            jobs[key] = EncodeJob(s.negative_prompt, s.frames, p.text, Outcome(item), negative=True)
    return jobs


def _run_jobs(
    engine: Session, items: list[Item], settings: Settings, report: Report, wd: Workdir, outputs: bool
) -> tuple[list[_Prepared], list[EncodeJob]]:
    """The items of a `run` with their settings, and an encode job for each prompt; items that cannot run are
    failed in `report`. `outputs`: check each item's -o path (a usage error stops the batch)."""
    prepared: list[_Prepared] = []
    jobs: list[EncodeJob] = []
    for item in items:
        s = _item_settings(item, settings, report)
        if s is None:
            continue
        if item.prompt is None:
            _failed(item, settings, report, "nothing to run: the item has no prompt")
            continue
        if outputs and item.output is not None:
            if s.num_videos > 1:
                raise UsageError(f"-o names one video, but {item.label[:40]!r} makes {s.num_videos}")
            check_output(item.output, settings.decode)
        try:
            s, image = first_frame(engine, item, s, settings, wd)
        except UsageError as exc:
            _failed(item, settings, report, str(exc))
            continue
        prepared.append(_Prepared(item, s, settings.encode, label=item.label, image=image))
        jobs.append(EncodeJob(item.prompt, s.frames, settings.encode, Outcome(item), image=image))
    return prepared, jobs


def _encoded(prepared: list[_Prepared], jobs: list[EncodeJob], report: Report) -> None:
    """Each item's embeddings from its encode job; a failed encode fails every video of its item in `report`."""
    for p, job in zip(prepared, jobs, strict=True):
        p.embeddings, p.key, p.cached = job.out.embeddings, job.out.key, job.out.cached
        if p.image is not None and p.image.status == "failed" and job.out.status != "failed":
            job.out.fail(f"encoding the first frame failed: {p.image.error}")
        if job.out.status == "failed":
            p.embeddings = None
            for s in p.settings.videos():
                out = Outcome(p.item, seed=s.seed, prompt=p.item.prompt)
                out.fail(f"encode failed: {job.out.error}")
                report.outcomes.append(out)


def encode_for_run(engine: Session, req: RunRequest) -> Report:
    """The encode stage of `run` alone (a Ray task runs it on its share of a batch, render.scale.raycluster): the items'
    prompts and the negative prompts of their true CFG, encoded and written as `run` writes them. The report holds
    the failures as `run` reports them (one outcome per seed), then an outcome per encoded prompt (a negative
    prompt's item has the source "negative prompt")."""
    report, wd = Report(), Workdir(req.workdir)
    prepared, jobs = _run_jobs(engine, req.items, req.settings, report, wd, outputs=False)
    negatives = list(_negative_jobs(engine, prepared).values())
    _encode(engine, jobs + negatives, wd, req.use_cache, req.progress, report)
    encode_images(engine, [p.image for p in prepared if p.image], req.settings, wd, req.use_cache, req.progress)
    _encoded(prepared, jobs, report)
    report.outcomes += [j.out for j in jobs + negatives if j.out.status != "failed"]
    return report

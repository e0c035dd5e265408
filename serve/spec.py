"""A job request: the JSON a client posts, checked in full before anything is queued.

    {"prompt": "a red circle moves up on a black background", "seed": 7, "steps": 10}
    {"prompts": ["...", "..."], "stop_at": 5}
    {"items": [{"prompt": "...", "seed": 3, "num_videos": 2, "name": "take-1"}], "guidance": 5.0}
    {"prompt": "a cat", "rewrite": {"mode": "normal", "endpoint": "http://127.0.0.1:8000/v1", "api_model": "m"}}
    {"prompt": "the cat turns its head", "image": "<sha256>.png"}     (image-to-video: an upload's id, serve.uploads)

Settings are `hyv run`'s, named as in `render.core.resolve.Flags` (`neg_prompt`, `num_videos`, ...), except the
placement (`device`, `dtype`), which is the server's. Items are `.jsonl` records (`render.files.batch.parse_record`).
The library checks everything (`engine.settings(Flags(...))`, `RenderSettings.with_overrides`): a bad request
is one `RequestError` naming its field, and nothing is queued.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from render.core.errors import UsageError
from render.core.hashing import key_of
from render.core.items import Item
from render.core.resolve import Flags
from render.core.settings import DEFAULTS, ITEM_OVERRIDES, RenderSettings, Settings
from render.files.batch import LineError, parse_record

if TYPE_CHECKING:
    from render.engine import Engine

KEY_VERSION = "job1"
MAX_ITEMS = 256  # items in one request
PLACEMENT = ("device", "dtype")  # the server's, not a job's
# Every setting a job may give, with its type as declared in Flags ("int | None", ...).
SETTINGS: dict[str, str] = {f.name: str(f.type) for f in fields(Flags) if f.name not in PLACEMENT}
PROMPT_FIELDS = ("prompt", "prompts", "items")
REWRITE_FIELDS = ("mode", "endpoint", "api_model", "model_dir")
KNOWN = (*PROMPT_FIELDS, "rewrite", "image", *SETTINGS)
ITEM_FIELDS = ("prompt", "original_prompt", "name", "image", *ITEM_OVERRIDES)


class RequestError(UsageError):
    """A request the server refuses (HTTP 400): bad JSON, an unknown field, a setting the model cannot take."""


@dataclass(frozen=True)
class JobSpec:
    """A checked request: its items, the settings it gave (None-free) and the resolved settings."""

    items: tuple[Item, ...]
    given: dict[str, Any]  # the settings the request named (Flags names)
    settings: Settings  # resolved: given > the model's hyv.json > hyv's defaults, with the server's placement
    rewrite: dict[str, str] | None = None

    def request(self) -> dict[str, Any]:
        """The request in its normal form (what a job stores; `parse` reads it back to the same spec)."""
        out: dict[str, Any] = {"items": [_record(it) for it in self.items], **self.given}
        if self.rewrite is not None:
            out["rewrite"] = dict(self.rewrite)
        return out

    def key(self, model_identity: str) -> str:
        """The content key of the job: the same videos asked for the same way give the same key, whether a
        setting was named or left to its default."""
        settings = dataclasses.asdict(self.settings)
        if self.settings.upscale.sr is None:  # the keys of jobs without super-resolution stay what they were
            settings.pop("upscale")
        return key_of(
            KEY_VERSION,
            {
                "model": model_identity,
                "settings": settings,
                "items": [
                    {"prompt": it.prompt, "name": it.name, **_video_fields(self.item_settings(it)), **_image(it)}
                    for it in self.items
                ],
                "rewrite": self.rewrite,
            },
        )

    def item_settings(self, item: Item) -> RenderSettings:
        return self.settings.render.with_overrides(item.overrides)

    def batch_item(self, item: Item) -> Item:
        """The item with every per-item setting spelled out, so that jobs with different seeds, sizes or steps
        can share one engine call (`group`)."""
        return replace(item, overrides=_video_fields(self.item_settings(item)))

    def group(self) -> tuple[Any, ...]:
        """Jobs whose specs have the same group run stage-major in one engine call: the settings that are not
        per-item must be equal."""
        s = self.settings
        neutral = replace(s.render, **{k: getattr(DEFAULTS.render, k) for k in ITEM_OVERRIDES})
        return (s.encode, neutral, s.decode, s.upscale)

    def without(self, name: str) -> dict[str, Any]:
        """The request without one setting (e.g. `stop_at`: the request that continues a preview)."""
        req = self.request()
        req.pop(name, None)
        return req

    @property
    def videos(self) -> int:
        return sum(self.item_settings(it).num_videos for it in self.items)


def parse(
    body: Any, engine: Engine, placement: dict[str, Any] | None = None, workdir: Path | None = None
) -> JobSpec:
    """Check a request (decoded JSON) against the engine's model; raise RequestError naming what is wrong.
    `workdir`: the server's, where uploaded images are (serve.uploads)."""
    if not isinstance(body, dict):
        raise RequestError("the request must be a JSON object, e.g. {\"prompt\": \"...\"}")
    unknown = sorted(set(body) - set(KNOWN))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}; known: {', '.join(KNOWN)}")
    given = {k: _setting(k, v) for k, v in body.items() if k in SETTINGS and v is not None}
    try:
        settings = engine.settings(Flags(**given, **(placement or {})))
    except UsageError as exc:
        raise RequestError(str(exc)) from None
    items = _items(body)
    items = _images(body, items, engine, workdir)
    for n, it in enumerate(items, start=1):
        try:
            settings.render.with_overrides(it.overrides)
        except UsageError as exc:
            raise RequestError(f"item {n}: {exc}") from None
    rewrite = _rewrite(body.get("rewrite"))
    return JobSpec(tuple(items), given, settings, rewrite)


def _setting(name: str, value: Any) -> Any:
    """A setting's JSON value, of the type Flags declares (an int is a float; a bool is neither)."""
    base = SETTINGS[name].replace(" | None", "")
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int | str": isinstance(value, (int, str)) and not isinstance(value, bool),  # seed: a number or "random"
    }.get(base, False)
    if not ok:
        kind = base.replace(" | ", " or ")
        raise RequestError(f"`{name}` must be {'an' if base.startswith('int') else 'a'} {kind}, got {value!r}")
    return float(value) if base == "float" else value


def _items(body: dict[str, Any]) -> list[Item]:
    named = [k for k in PROMPT_FIELDS if body.get(k) is not None]
    if len(named) != 1:
        raise RequestError("give exactly one of `prompt` (a string), `prompts` (strings) or `items` (objects)")
    what = body[named[0]]
    if named[0] == "prompt":
        records: list[Any] = [{"prompt": what}] if isinstance(what, str) else [None]
    elif not isinstance(what, list) or not what:
        raise RequestError(f"`{named[0]}` must be a non-empty list")
    elif named[0] == "prompts":
        records = [{"prompt": p} if isinstance(p, str) else None for p in what]
    else:
        records = what
    if len(records) > MAX_ITEMS:
        raise RequestError(f"at most {MAX_ITEMS} items in one request, got {len(records)}; split the batch")
    items: list[Item] = []
    for n, rec in enumerate(records, start=1):
        if isinstance(rec, dict) and set(rec) - set(ITEM_FIELDS):
            extra = sorted(set(rec) - set(ITEM_FIELDS))[0]
            raise RequestError(f"item {n}: unknown field {extra!r}; an item takes prompt, name, image, "
                               f"{', '.join(ITEM_OVERRIDES)}")
        rec = {k: v for k, v in rec.items() if k != "image"} if isinstance(rec, dict) else rec
        got = parse_record(rec if rec is not None else {"prompt": None}, f"item {n}")
        if isinstance(got, LineError):
            where = "" if named[0] == "prompt" else f"{got.source}: "
            raise RequestError(f"{where}{got.message}".replace("`prompt`", "prompt"))
        items.append(got)
    return items


def _images(body: dict[str, Any], items: list[Item], engine: Engine, workdir: Path | None) -> list[Item]:
    """Each item's first frame: its own `image`, else the request's (uploads' ids); checked against the model (an
    image-to-video model needs one, a text-to-video model takes none)."""
    from dataclasses import replace

    from serve import uploads

    given = body.get("items")
    records: list[Any] = given if isinstance(given, list) else [{}] * len(items)
    out = []
    for n, (it, rec) in enumerate(zip(items, records, strict=True), start=1):
        name = rec.get("image") if isinstance(rec, dict) and rec.get("image") is not None else body.get("image")
        if name is None:
            out.append(it)
            continue
        if workdir is None:
            raise RequestError("this server takes no images")
        try:
            out.append(replace(it, image=uploads.resolve(workdir, name, f"item {n}: " if len(items) > 1 else "")))
        except UsageError as exc:
            raise RequestError(str(exc)) from None
    model, family = engine.model, engine.family
    if any(it.image is not None for it in out) and family.image_encoding(model) is None:
        raise RequestError(f"{model.source} is a text-to-video model: it takes no `image`")
    if family.image_required(model) and any(it.image is None for it in out):
        raise RequestError(f"{model.source} is an image-to-video model: give an `image` (POST /api/images first)")
    return out


def _image(item: Item) -> dict[str, str]:
    return {"image": item.image.name} if item.image is not None else {}


def _rewrite(value: Any) -> dict[str, str] | None:
    """`{"mode": ..., "endpoint": ..., "api_model": ...}` (or `model_dir`), checked by the rewrite library."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("mode"), str):
        raise RequestError("`rewrite` must be an object with a `mode` (normal or director) and a backend")
    extra = sorted(set(value) - set(REWRITE_FIELDS))
    if extra:
        raise RequestError(f"rewrite: unknown field {extra[0]!r}; known: {', '.join(REWRITE_FIELDS)}")
    if any(not isinstance(v, str) for v in value.values()):
        raise RequestError("rewrite: every field is a string")
    from pathlib import Path

    from rewrite.errors import RewriteError
    from rewrite.settings import make_backend, resolve_mode

    try:
        mode = resolve_mode(value["mode"])
        make_backend(
            endpoint=value.get("endpoint"),
            api_model=value.get("api_model"),
            model_dir=Path(value["model_dir"]) if value.get("model_dir") else None,
        )
    except RewriteError as exc:
        raise RequestError(f"rewrite: {exc}") from None
    return {**value, "mode": mode}


def _video_fields(s: RenderSettings) -> dict[str, Any]:
    return {k: getattr(s, k) for k in ITEM_OVERRIDES}


def _record(item: Item) -> dict[str, Any]:
    rec: dict[str, Any] = {"prompt": item.prompt, **item.overrides}
    if item.name is not None:
        rec["name"] = item.name
    if item.original_prompt is not None:
        rec["original_prompt"] = item.original_prompt
    return {**rec, **_image(item)}

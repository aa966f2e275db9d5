"""``pot model``: look at model files (pot.ml.modelfile) before anyone scores them."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import click


@click.group()
def group() -> None:
    """Model files: canonical safetensors with the architecture in their metadata."""


def _read_header_bytes(path: Path) -> tuple[bytes, int]:
    """The file's first 8 + header-length bytes (never more than the header limit) and its size."""
    from pot.ml.modelfile import MAX_HEADER_BYTES

    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) == 8:
            (n,) = struct.unpack("<Q", head)
            head += f.read(min(n, MAX_HEADER_BYTES))
    return head, size


def _mid(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "0x" + h.hexdigest()


def _load_spec(spec: str, store_dir: str | None):
    """A task spec from a file, or else from the content store by CID."""
    from pot.ml.spec import MAX_SPEC_BYTES, TaskSpec
    from pot.storage import StorageError, open_store

    path = Path(spec)
    if path.is_file():
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise click.ClickException(f"spec {spec}: over {MAX_SPEC_BYTES} bytes")
        raw = path.read_bytes()
    else:
        try:
            with open_store(store_dir) as store:
                raw = store.get(spec, max_size=MAX_SPEC_BYTES)
        except StorageError as exc:
            raise click.ClickException(f"spec {spec} is neither a file nor fetchable: {exc}") from None
    return TaskSpec.from_json(raw)


@group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--spec", "spec_ref", metavar="CID_OR_FILE",
              help="Check the model against this task spec (a file, or a CID in the store): the "
                   "architecture a validator requires for the order, and its size limit.")
@click.option("--store", "store_dir", envvar="POT_STORE", show_envvar=True, metavar="DIR_OR_URL",
              help="Content store to fetch --spec from by CID (default ~/.pot/store).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def inspect(file: Path, spec_ref: str | None, store_dir: str | None, as_json: bool) -> None:
    """Print FILE's architecture, parameter count and mid (sha256, its id on the network), from
    its header alone, after the checks a validator makes; with --spec, check it against an
    order's spec. A file a validator would score 0 exits non-zero with the one-line reason."""
    from pot.ml import ModelFileError, SpecError
    from pot.ml.modelfile import MAX_MODEL_BYTES, read_header

    head, size = _read_header_bytes(file)
    try:
        hdr = read_header(head, file_size=size, max_bytes=MAX_MODEL_BYTES)
    except ModelFileError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    found = {"file": os.fspath(file), "mid": _mid(file), "bytes": size, "arch": hdr.arch,
             "parameters": hdr.num_params, "tensors": len(hdr.tensors), "config": hdr.config}
    if spec_ref is not None:
        try:
            spec = _load_spec(spec_ref, store_dir)
            spec.check_model(hdr)
            if size > spec.max_model_bytes:  # cannot happen to a canonical file of the right architecture
                raise SpecError(f"file is {size:,} bytes; the spec's model file is {spec.max_model_bytes:,}")
        except SpecError as exc:
            raise click.ClickException(f"{file} does not match the spec: {exc}") from None
        found["spec"] = {"ref": spec_ref, "metric": spec.metric, "matches": True}
    if as_json:
        click.echo(json.dumps(found, sort_keys=True))
        return
    click.echo(f"file        {file} ({size:,} bytes)")
    click.echo(f"mid         {found['mid']}")
    click.echo(f"arch        {hdr.arch}  {json.dumps(hdr.config, sort_keys=True)}")
    click.echo(f"parameters  {hdr.num_params:,} in {len(hdr.tensors)} tensors")
    if spec_ref is not None:
        click.echo(f"spec        matches {spec_ref} (metric {found['spec']['metric']})")

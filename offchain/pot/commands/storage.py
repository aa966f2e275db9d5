"""``pot storage``: add, fetch, export and serve content-addressed files (pot.storage)."""

from __future__ import annotations

import functools
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import click

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class SizeParam(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        m = _SIZE_RE.match(str(value))
        if not m:
            self.fail(f"{value!r} is not a size such as 500M, 2G or 1048576", param, ctx)
        unit = (m.group(2) or "").lower()[:1]
        return int(float(m.group(1)) * _UNITS[unit])


def store_options(*, gateway: bool = False, api: bool = True):
    """--store / --api (/ --gateway) / --max-size, turned into one ``store`` argument."""

    def decorate(fn):
        @click.option("--max-size", type=SizeParam(), default="8G", show_default=True,
                      help="Refuse objects larger than this (suffixes K, M, G, T; powers of 1024). "
                           "Checked before an object is read whole.")
        @click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path),
                      envvar="POT_STORE", show_envvar=True,
                      help="Directory of the embedded store (default ~/.pot/store). Processes on "
                           "one machine may share it.")
        @functools.wraps(fn)
        def wrapper(*args, store_dir, max_size, api_url=None, gateway_url=None, **kwargs):
            from pot.storage import EmbeddedStore, open_store

            ctx = click.get_current_context()
            explicit_dir = ctx.get_parameter_source("store_dir") == click.core.ParameterSource.COMMANDLINE
            if sum(map(bool, (explicit_dir, api_url, gateway_url))) > 1:
                raise click.UsageError("give only one of --store, --api and --gateway")
            if api_url:
                store = open_store(api_url, max_size=max_size)
            elif gateway_url:
                store = open_store("gateway+" + gateway_url, max_size=max_size)
            else:
                store = EmbeddedStore(store_dir or Path("~/.pot/store").expanduser(), max_size=max_size)
            with store, _errors():
                return fn(*args, store=store, **kwargs)

        if api:
            wrapper = click.option(
                "--api", "api_url", metavar="URL", envvar="POT_IPFS_API", show_envvar=True,
                help="Use an IPFS node's Kubo RPC API instead of the embedded store, "
                     "e.g. http://127.0.0.1:5001.")(wrapper)
        if gateway:
            wrapper = click.option(
                "--gateway", "gateway_url", metavar="URL",
                help="Fetch from an HTTP gateway (another node's `pot storage serve`, or an IPFS "
                     "gateway) instead; the bytes are verified against the CID all the same.")(wrapper)
        return wrapper

    return decorate


@contextmanager
def _errors():
    from pot.storage import StorageError

    try:
        yield
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"no such file: {exc.filename}") from None


@contextmanager
def _progress(total: int | None, desc: str, quiet: bool):
    """A byte progress bar on stderr, shown for large transfers on a terminal only."""
    if quiet or not sys.stderr.isatty() or (total is not None and total < 8 * 1024 * 1024):
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
              file=sys.stderr, leave=False) as bar:
        yield bar.update


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar; print only the result.")


@click.group()
def group() -> None:
    """Content-addressed storage of models and data sets.

    CIDs are exactly what `ipfs add` prints for the same bytes (CIDv1 with raw leaves by
    default), so content keeps its CID between the embedded store (a directory, the default)
    and a real IPFS node (--api). Every fetch is verified against its CID.
    """


@group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cid-version", type=click.Choice(["0", "1"]), default="1", show_default=True,
              help="1: `ipfs add --cid-version=1` (raw leaves, bafy…/bafk…). 0: plain `ipfs add` (Qm…).")
@click.option("--no-pin", is_flag=True, help="Do not pin: the content may be garbage-collected.")
@quiet_option
@store_options()
def add(file: Path, cid_version: str, no_pin: bool, quiet: bool, store) -> None:
    """Add FILE to the store and print its CID."""
    with _progress(file.stat().st_size, file.name, quiet) as progress:
        cid = store.add_file(file, cid_version=int(cid_version), pin=not no_pin, progress=progress)
    click.echo(cid)


@group.command()
@click.argument("cid")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Where to write the file ('-' for stdout). Default: ./CID. The file appears only "
                   "once all of it is verified.")
@quiet_option
@store_options(gateway=True)
def get(cid: str, output: Path | None, quiet: bool, store) -> None:
    """Fetch CID, verify it, and write it to a file."""
    if output is not None and str(output) == "-":
        data = store.get(cid)  # verified whole before a byte reaches stdout
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    dest = output or Path(cid)
    try:
        total = store.size(cid)
    except Exception:  # the size is only for the progress bar; fetch reports real errors
        total = None
    with _progress(total, cid[:16] + "…", quiet) as progress:
        size = store.fetch(cid, dest, progress=progress)
    if not quiet:
        click.echo(f"{dest}: {size} bytes, verified against {cid}", err=True)


@group.command("export-car")
@click.argument("cid")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@store_options(api=False)
def export_car(cid: str, file: Path, store) -> None:
    """Write CID's blocks to FILE as a CAR v1, for `ipfs dag import FILE` on a real node."""
    n = store.export_car(cid, file)
    click.echo(f"{file}: {n} blocks, root {cid}", err=True)


@group.command("import-car")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@store_options(api=False)
def import_car(file: Path, store) -> None:
    """Import a CAR v1 FILE (e.g. from `ipfs dag export`) into the embedded store; print its roots."""
    for root in store.import_car(file):
        click.echo(root)


@group.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cid-version", type=click.Choice(["0", "1"]), default="1", show_default=True,
              help="As for `pot storage add`.")
def cid(file: Path, cid_version: str) -> None:
    """Print the CID FILE would get, without storing anything (`ipfs add --only-hash`)."""
    from pot.storage import compute_file_cid

    click.echo(compute_file_cid(file, int(cid_version)))


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 to serve other machines.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="TCP port (0 picks a free one).")
@store_options(api=False)
def serve(host: str, port: int, store) -> None:
    """Serve the embedded store read-only as an IPFS path gateway (GET /ipfs/CID).

    Others fetch with `pot storage get CID --gateway http://HOST:PORT` and verify what they get.
    """
    from pot.storage.gateway import GatewayServer

    server = GatewayServer(store, (host, port))
    click.echo(f"serving {store.root} at {server.url}/ipfs/<cid> (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@group.command()
@click.argument("cid")
@store_options(api=False)
def verify(cid: str, store) -> None:
    """Re-hash every block of CID in the embedded store."""
    n = store.verify(cid)
    click.echo(f"{cid}: {n} blocks, all sound")

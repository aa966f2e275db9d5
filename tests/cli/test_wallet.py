"""`pot wallet import`: an existing key becomes an encrypted keystore; the key never appears in
an argument or on screen, and a second import under the same name loses nothing."""

import json

from click.testing import CliRunner

from pot.chain.keys import load_account
from pot.cli import main

KEY = "0x" + "4c" * 32


def test_import_keeps_the_key_encrypted_and_refuses_to_overwrite(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    args = ["wallet", "import", "me", "--dir", str(tmp_path / "ks"), "--password-file", str(pw), "--json"]
    r = CliRunner(env={"POT_PRIVATE_KEY": None, "POT_KEYSTORE_PASSWORD": None}).invoke(main, args, input=KEY + "\n")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    files = list((tmp_path / "ks").iterdir())
    assert len(files) == 1 and KEY[2:] not in files[0].read_text() and "4c4c4c" not in r.output
    assert load_account(str(files[0]), password_file=pw, prompt=False).address == out["address"]
    # the same name again: refused in one line, the first keystore untouched
    before = files[0].read_bytes()
    r = CliRunner(env={"POT_PRIVATE_KEY": None}).invoke(main, args, input=("0x" + "11" * 32) + "\n")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert files[0].read_bytes() == before
    r = CliRunner().invoke(main, ["wallet", "list", "--dir", str(tmp_path / "ks"), "--json"])
    assert r.exit_code == 0 and out["address"] in r.output

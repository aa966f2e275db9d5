import json

from click.testing import CliRunner

from pot.cli import main


def test_bench_ledger_settles_every_order_and_writes_the_agreed_json(tmp_path):
    out = tmp_path / "ledger.json"
    r = CliRunner().invoke(main, ["bench", "ledger", "--orders", "15,30", "--rate", "1", "--dir", str(tmp_path / "db"),
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert [row["orders"] for row in d["rows"]] == [15, 30]
    for row, det in zip(d["rows"], d["details"]):
        assert set(row) == {"orders", "msgs", "msgs_per_s", "us_per_msg", "checkpoint_ms", "db_bytes_per_order"}
        # every order's full cycle went through apply, and every one settled and left the working state
        assert det["settled"] == row["orders"]
        assert row["msgs"] > row["orders"] * (10 * 2 + 3 * 10 * 2)
        assert det["signed_msgs"] >= row["orders"] * (10 * 2 + 3 * 10 * 2)
        assert row["msgs_per_s"] > 0 and row["db_bytes_per_order"] > 0
    assert d["exponent"] is not None
    assert d["settings"]["synchronous"] == "FULL" and d["settings"]["max_ops_per_transaction"] == 128

"""The national response key rotates: the new key is announced in an answer signed by the pinned one, the
client follows, and a key nobody pinned vouched for stays refused."""

from __future__ import annotations

import subprocess
import sys

from reliability_support import RLab

from hwb_client.adapters.response_keys import load_pinned, pin_path
from hwb_sandbox.testing import SandboxProcess
from mis_builder import Mis, small_school

AREA = "Upgrading from 0.1.0: keyed state digests and the national response key"


def test_a_rotated_national_response_key_is_followed_when_the_pinned_key_vouches_for_it(
    rlab, tmp_path, scenario
):
    """The national side rotates its response key (``hwb-sandbox rotate-response-key``) and restarts:
    the client's next acknowledgement is signed by a key it has not pinned; it asks for the keys vouched
    for by its pinned key (``GET /v1/response-keys?signed_by=PINNED``), pins the new one, accepts the
    answer (exit 0), and the following run needs no second look."""
    db = tmp_path / "rotating" / "sandbox.db"
    with SandboxProcess(db) as first:
        lab: RLab = rlab(enrol=False, base_url=first.url)
        lab.sandbox = first
        lab.enrol()
        small_school(lab.schools[0].mis_path, lab.dfes, learners=5).close()
        assert lab.run_now().returncode == 0
    pins = pin_path(lab.root / "state" / "keys" / f"{lab.dfes}.pem")
    (old,) = load_pinned(pins)
    rotated = subprocess.run(
        [sys.executable, "-m", "hwb_sandbox", "rotate-response-key", "--db", str(db)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert rotated != old.key_id
    with SandboxProcess(db) as second:
        lab.sandbox = second
        lab.lab.sandbox_url = second.url
        lab.write_config()
        mis = Mis(lab.schools[0].mis_path, lab.dfes)
        mis.add_learner(900)
        mis.commit()
        mis.close()
        followed = lab.run_now()
        assert followed.returncode == 0, followed.stdout + followed.stderr
        (event,) = followed.events("response_key_rotated")
        assert event["key_id"] == rotated and event["vouched_by"] == old.key_id
        assert [key.key_id for key in load_pinned(pins)] == [rotated]
        again = lab.run_now()
        assert again.returncode == 0 and again.events("response_key_rotated") == []
    scenario.figures["rotation"] = f"{old.key_id} -> {rotated}"

"""The phone app's day, through a client generated from mobile-api-spec/openapi.json.

Run by tests/client/run, which generates the client (`taizhang_api_client`, unedited) into a
temporary directory on PYTHONPATH. Every call goes through the generated functions and typed
models: a value the document does not describe (an enum value, a missing field, a status it
does not list) fails the step. With --server it uses a running server; with --binary it starts
`taizhang serve --demo` on a temporary SQLite data directory and stops it at the end.

Exit status 0 when every step passed; 1, naming the step, otherwise.
"""

import argparse
import datetime
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import traceback
import uuid

from taizhang_api_client import AuthenticatedClient, Client
from taizhang_api_client.api.auth import get_me, login, logout
from taizhang_api_client.api.checkins import submit_checkin
from taizhang_api_client.api.operations import metrics, readyz
from taizhang_api_client.api.photos import photo_exists, upload_photo
from taizhang_api_client.api.surveys import my_submissions, submit_household_survey
from taizhang_api_client.api.villages import list_villages
from taizhang_api_client.models import (
    CheckinAnswer,
    CheckinKind,
    CheckinRequest,
    Crs,
    DeviceInput,
    EmploymentInput,
    EmploymentStatus,
    ErrorCode,
    HouseholdInput,
    HouseholdSurveyAnswer,
    HouseholdSurveyRequest,
    LabourCapacity,
    LocationInput,
    LoginRequest,
    Me,
    MemberInput,
    MySubmissions,
    PhotoFormat,
    PhotoInfo,
    PovertyStatus,
    Problem,
    Readiness,
    Relation,
    ReviewStatus,
    Role,
    ScopeLevel,
    Sex,
    TokenResponse,
    TrainingInput,
    TrainingTrade,
    VillageList,
)
from taizhang_api_client.types import File

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The demo enumerator of 洮北区 (fixtures/demo_users.json): villages 220802100200 and 220802100201.
PHONE, PASSWORD = "13900000004", "demo-field-0004"
VILLAGE = "220802100201"  # 平安村
CENTRE = (45.736537, 122.566161)
DEVICE = DeviceInput(device_id="app-flow-" + uuid.uuid4().hex[:8], app_version="1.0.0")
TEST_SECRET = "0123456789abcdef" * 4


def id_number(region: str, birth: str, sequence: int) -> str:
    """A valid resident ID number (GB 11643 check character)."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    first = f"{region}{birth}{sequence:03d}"
    total = sum(int(d) * w for d, w in zip(first, weights))
    return first + "10X98765432"[total % 11]


def china_now() -> str:
    return datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))).isoformat(
        timespec="seconds"
    )


class Step:
    """Names the step being run, for the failure message."""

    current = "start"
    passed = 0

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        Step.current = self.name
        print(f"· {self.name}", flush=True)

    def __exit__(self, failed, *_):
        if failed is None:
            Step.passed += 1
        return False


def expect(value, kind, what: str):
    if not isinstance(value, kind):
        raise AssertionError(f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def check(condition: bool, message: str):
    if not condition:
        raise AssertionError(message)


def upload(client: AuthenticatedClient, name: str) -> tuple[str, PhotoInfo]:
    payload = (ROOT / "fixtures" / "photos" / name).read_bytes()
    sha = hashlib.sha256(payload).hexdigest()
    answer = upload_photo.sync_detailed(
        sha, client=client, body=File(payload=payload, file_name=name, mime_type="image/jpeg")
    )
    check(answer.status_code == 201, f"upload {name}: status {answer.status_code}")
    info = expect(answer.parsed, PhotoInfo, f"upload {name}")
    check(info.format_ == PhotoFormat.JPEG, f"upload {name}: format {info.format_}")
    check((info.width, info.height) == (640, 480), f"upload {name}: {info.width}×{info.height}")
    # The same photo again: already stored, answered at once.
    again = upload_photo.sync_detailed(
        sha, client=client, body=File(payload=payload, file_name=name, mime_type="image/jpeg")
    )
    check(again.status_code == 200, f"upload {name} again: status {again.status_code}")
    exists = photo_exists.sync_detailed(sha, client=client)
    check(exists.status_code == 200, f"HEAD photo {name}: status {exists.status_code}")
    return sha, info


def household_survey(submission_id: str, photo: str) -> HouseholdSurveyRequest:
    head = id_number("220802", "19700101", 123)
    spouse = id_number("220802", "19720304", 224)
    return HouseholdSurveyRequest(
        submission_id=submission_id,
        form_version="2020.07",
        village_code=VILLAGE,
        surveyed_at=china_now(),
        location=LocationInput(lat=CENTRE[0], lon=CENTRE[1], accuracy_m=12.5, crs=Crs.WGS84),
        household=HouseholdInput(
            head_name="张三",
            head_id_number=head,
            household_number=None,
            poverty_status=PovertyStatus.LIFTED,
            relocated=False,
            phone="13800000000",
        ),
        members=[
            MemberInput(
                name="张三",
                id_number=head,
                sex=Sex.MALE,
                birth_date="1970-01-01",
                relation=Relation.HEAD,
                labour_capacity=LabourCapacity.ABLE,
                employment=EmploymentInput(
                    status=EmploymentStatus.OUT_OF_PROVINCE, monthly_income_yuan=3000
                ),
                wants_public_post=False,
                training=TrainingInput(wanted=True, trade=TrainingTrade.ELECTRICIAN),
                at_risk=False,
                safety_net=[],
            ),
            MemberInput(
                name="李秀兰",
                id_number=spouse,
                sex=Sex.FEMALE,
                birth_date="1972-03-04",
                relation=Relation.SPOUSE,
                labour_capacity=LabourCapacity.WEAK,
                employment=EmploymentInput(status=EmploymentStatus.FARMING),
                wants_public_post=True,
                training=TrainingInput(wanted=False),
                at_risk=False,
                safety_net=[],
            ),
        ],
        photos=[photo],
        replaces=None,
        device=DEVICE,
    )


def app_flow(base_url: str) -> None:
    public = Client(base_url=base_url, raise_on_unexpected_status=True, timeout=30.0)
    with Step("readiness"):
        ready = expect(readyz.sync(client=public), Readiness, "readyz")
        check(ready.status == "ready", f"readyz: {ready.status}")

    with Step("log in"):
        tokens = expect(
            login.sync(
                client=public,
                body=LoginRequest(phone=PHONE, password=PASSWORD, device_id=DEVICE.device_id),
            ),
            TokenResponse,
            "login",
        )
        check(tokens.user.role == Role.ENUMERATOR, f"login: role {tokens.user.role}")
    client = AuthenticatedClient(
        base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True, timeout=30.0
    )

    with Step("read /me"):
        me = expect(get_me.sync(client=client), Me, "/me")
        check(me.scope == ScopeLevel.VILLAGES, f"/me: scope {me.scope}")
        check(VILLAGE in me.village_codes, f"/me: villages {me.village_codes}")
        check(me.role_label == "驻村工作队员", f"/me: role label {me.role_label}")

    with Step("read the villages with their geofences"):
        villages = expect(list_villages.sync(client=client, geofence=True), VillageList, "villages")
        check(
            sorted(v.code for v in villages.villages) == sorted(me.village_codes),
            f"villages: {[v.code for v in villages.villages]}",
        )
        pingan = next(v for v in villages.villages if v.code == VILLAGE)
        check(pingan.geofence is not None, "villages: no geofence")
        check(pingan.geofence["type"] in ("Polygon", "MultiPolygon"), "villages: geofence type")

    with Step("upload photos (JPEG PUT)"):
        survey_photo, _ = upload(client, "household.jpg")
        checkin_photo, _ = upload(client, "doorplate.jpg")

    with Step("post a household survey"):
        survey = household_survey(str(uuid.uuid4()), survey_photo)
        stored = submit_household_survey.sync_detailed(client=client, body=survey)
        check(stored.status_code == 201, f"survey: status {stored.status_code}")
        answer = expect(stored.parsed, HouseholdSurveyAnswer, "survey")
        check(answer.id == survey.submission_id, f"survey: id {answer.id}")
        check(answer.version == 1, f"survey: version {answer.version}")

    with Step("replay the survey (same submission_id)"):
        replay = submit_household_survey.sync_detailed(client=client, body=survey)
        check(replay.status_code == 200, f"survey replay: status {replay.status_code}")
        replayed = expect(replay.parsed, HouseholdSurveyAnswer, "survey replay")
        check(replayed.to_dict() == answer.to_dict(), "survey replay: another answer")

    with Step("reuse the submission_id for other content"):
        other = household_survey(survey.submission_id, survey_photo)
        other.household.relocated = True
        refused = submit_household_survey.sync_detailed(client=client, body=other)
        check(refused.status_code == 409, f"reused id: status {refused.status_code}")
        problem = expect(refused.parsed, Problem, "reused id")
        check(problem.code == ErrorCode.SUBMISSION_ID_REUSED, f"reused id: {problem.code}")

    with Step("check in"):
        checkin = CheckinRequest(
            submission_id=str(uuid.uuid4()),
            kind=CheckinKind.RESIDENT_DUTY,
            village_code=VILLAGE,
            captured_at=china_now(),
            location=LocationInput(lat=CENTRE[0], lon=CENTRE[1], accuracy_m=9.0),
            mock_location=False,
            photo=checkin_photo,
            worker_id_number=None,
            device=DEVICE,
        )
        stored = submit_checkin.sync_detailed(client=client, body=checkin)
        check(stored.status_code == 201, f"check-in: status {stored.status_code}")
        checked_in = expect(stored.parsed, CheckinAnswer, "check-in")
        check(checked_in.status in ("accepted", "flagged"), f"check-in: {checked_in.status}")

    with Step("replay the check-in (same submission_id)"):
        replay = submit_checkin.sync_detailed(client=client, body=checkin)
        check(replay.status_code == 200, f"check-in replay: status {replay.status_code}")
        replayed = expect(replay.parsed, CheckinAnswer, "check-in replay")
        check(replayed.to_dict() == checked_in.to_dict(), "check-in replay: another answer")

    with Step("read /me/submissions"):
        mine = expect(my_submissions.sync(client=client), MySubmissions, "/me/submissions")
        ours = [s for s in mine.items if s.id == survey.submission_id]
        check(len(ours) == 1, f"/me/submissions: {len(ours)} entries for the survey")
        check(ours[0].status == ReviewStatus.SUBMITTED, f"/me/submissions: {ours[0].status}")

    with Step("scrape /metrics as Prometheus 0.0.4 and as OpenMetrics"):
        check_metrics(public)

    with Step("log out"):
        out = logout.sync_detailed(client=client)
        check(out.status_code == 204, f"logout: status {out.status_code}")
        after = get_me.sync(client=client)
        problem = expect(after, Problem, "/me after logout")
        check(problem.code == ErrorCode.SESSION_REVOKED, f"/me after logout: {problem.code}")


def check_metrics(public: Client) -> None:
    """Both formats parse with the reference parsers, and count what the flow did."""
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )
    from prometheus_client.parser import text_string_to_metric_families as text_families

    def samples(families):
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families
            for s in family.samples
        }

    text = metrics.sync_detailed(client=public)
    check(
        text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8",
        f"metrics: {text.headers['content-type']}",
    )
    check("# EOF" not in text.parsed, "metrics 0.0.4: # EOF")
    plain = samples(text_families(text.parsed))
    om = metrics.sync_detailed(
        client=public.with_headers({"accept": "application/openmetrics-text; version=1.0.0"})
    )
    check(
        om.headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8",
        f"metrics: {om.headers['content-type']}",
    )
    strict = samples(openmetrics_families(om.parsed))
    for name, labels, expected in [
        ("taizhang_submissions_total", {"kind": "household_survey", "outcome": "stored"}, 1),
        ("taizhang_submissions_total", {"kind": "household_survey", "outcome": "replayed"}, 1),
        ("taizhang_submissions_total", {"kind": "household_survey", "outcome": "id_reused"}, 1),
        ("taizhang_submissions_total", {"kind": "checkin", "outcome": "stored"}, 1),
        ("taizhang_submissions_total", {"kind": "checkin", "outcome": "replayed"}, 1),
        ("taizhang_review_queue_depth", {"county": "220802000000"}, 1),
    ]:
        key = (name, tuple(sorted(labels.items())))
        for fmt, found in (("0.0.4", plain), ("OpenMetrics", strict)):
            check(key in found, f"metrics {fmt}: no {name}{labels}")
            # At least: a --server run may find earlier work.
            check(found[key] >= expected, f"metrics {fmt}: {name}{labels} = {found[key]}")
    check(
        any(name == "taizhang_build_info" for name, _ in plain),
        "metrics: no taizhang_build_info",
    )


def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TAIZHANG_DATA_DIR": data_dir,
        "TAIZHANG_BIND": "127.0.0.1:0",
        "TAIZHANG_SECRET_KEY": TEST_SECRET,
        "TAIZHANG_DEMO_HOUSEHOLDS": "0",
        "TAIZHANG_WORKERS": "2",
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    }
    server = subprocess.Popen(
        [binary, "serve", "--demo"], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    found: list[str] = []

    def read():
        assert server.stdout is not None
        for line in server.stdout:
            if not found and line.startswith("Taizhang is serving on "):
                found.append(line.split()[4])
        # Keep draining so the server never blocks on a full pipe.

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=120)
    while not found and server.poll() is None and datetime.datetime.now() < deadline:
        reader.join(0.1)
    if not found:
        server.kill()
        server.wait()
        raise RuntimeError(f"the server did not announce its address (exit {server.returncode})")
    return server, found[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="base URL of a running server with the demo users")
    where.add_argument("--binary", help="path of the taizhang binary to start")
    args = parser.parse_args()
    server = None
    with tempfile.TemporaryDirectory(prefix="taizhang-client-") as data_dir:
        try:
            base_url = args.server
            if args.binary:
                with Step("start taizhang serve --demo on a new SQLite data directory"):
                    server, base_url = start_server(args.binary, data_dir)
                    print(f"  serving on {base_url}", flush=True)
            app_flow(base_url.rstrip("/"))
        except Exception:
            traceback.print_exc()
            print(f"FAILED at step: {Step.current}", file=sys.stderr)
            print(f"app_flow: {Step.passed} passed, 1 failed")
            return 1
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    print(f"app_flow: {Step.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

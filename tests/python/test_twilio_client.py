"""The official twilio-python helper library against assetd.

The library's HTTP client is pointed at assetd: requests for https://serverless.twilio.com go
to http://127.0.0.1:$PORT instead. Next-page URLs come from assetd's own `meta` and are
followed as they are. Environment: PORT, ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID (a service that
holds the asset version VERSION_SID, prepared before the server started).

Prints DEPLOYED_DOMAIN=<domain> at the end; exits non-zero on any failure.
"""

import json
import os
import sys
import time

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TWILIO = "https://serverless.twilio.com"
BASE = "http://127.0.0.1:%s" % os.environ["PORT"]


class AssetdHttpClient(TwilioHttpClient):
    """Sends what the library addresses to Twilio's Serverless host to assetd."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO):
            url = BASE + url[len(TWILIO):]
        if not url.startswith(BASE + "/"):
            raise AssertionError("request left assetd: %s" % url)
        self.urls.append((method, url))
        return super().request(method, url, *args, **kwargs)


def expect_error(status, fn):
    """Runs fn, which must raise TwilioRestException with this HTTP status; returns it."""
    try:
        fn()
    except TwilioRestException as e:
        assert e.status == status, "expected %s, got %s: %s" % (status, e.status, e.msg)
        return e
    raise AssertionError("expected HTTP %s, got success" % status)


def main():
    http = AssetdHttpClient()
    client = Client(os.environ["ACCOUNT_SID"], os.environ["AUTH_TOKEN"], http_client=http)
    sls = client.serverless.v1
    prepared_sid = os.environ["SERVICE_SID"]
    version_sid = os.environ["VERSION_SID"]

    # Services: create three, list them two per page (the library follows next_page_url).
    created = []
    for i in range(3):
        svc = sls.services.create(
            unique_name="py-service-%d" % i,
            friendly_name="Python service %d" % i,
            include_credentials=True,
            ui_editable=False,
        )
        assert svc.sid.startswith("ZS") and len(svc.sid) == 34, svc.sid
        assert svc.unique_name == "py-service-%d" % i
        assert svc.include_credentials is True and svc.ui_editable is False
        assert svc.domain_base.startswith("py-service-%d-" % i)
        assert svc.links["environments"] == "%s/v1/Services/%s/Environments" % (BASE, svc.sid)
        created.append(svc.sid)
    before = len(http.urls)
    listed = [s.sid for s in sls.services.list(page_size=2)]
    pages = len(http.urls) - before
    assert sorted(listed) == sorted(created + [prepared_sid]), listed
    assert pages == 2, "4 services at 2 per page are 2 requests, not %d" % pages
    assert any("PageToken=" in u for _, u in http.urls[before:]), http.urls[before:]

    fetched = sls.services("py-service-1").fetch()
    assert fetched.sid == created[1]
    updated = sls.services(created[1]).update(friendly_name="Renamed", ui_editable=True)
    assert updated.friendly_name == "Renamed" and updated.ui_editable is True
    assert sls.services(created[2]).delete() is True
    err = expect_error(404, lambda: sls.services(created[2]).fetch())
    assert err.code == 20404, err.code
    err = expect_error(409, lambda: sls.services.create(unique_name="py-service-0", friendly_name="again"))

    # Environments (on the prepared service, which holds the version).
    svc = sls.services(prepared_sid)
    env = svc.environments.create(unique_name="dev-environment", domain_suffix="dev")
    assert env.sid.startswith("ZE") and env.build_sid is None
    assert env.domain_suffix == "dev"
    assert env.domain_name.endswith("-dev.localhost"), env.domain_name
    prod = svc.environments.create(unique_name="production")
    assert prod.domain_suffix is None
    envs = {e.sid: e.unique_name for e in svc.environments.list(page_size=1)}
    assert envs == {env.sid: "dev-environment", prod.sid: "production"}, envs
    expect_error(409, lambda: svc.environments.create(unique_name="dev-environment", domain_suffix="other"))

    # Assets.
    asset = sls.services(created[0]).assets.create(friendly_name="/from-python.txt")
    assert asset.sid.startswith("ZH") and asset.friendly_name == "/from-python.txt"
    names = [a.friendly_name for a in sls.services(created[0]).assets.list()]
    assert names == ["/from-python.txt"], names
    renamed = sls.services(created[0]).assets(asset.sid).update(friendly_name="/renamed.txt")
    assert renamed.friendly_name == "/renamed.txt"
    prepared_assets = [a.friendly_name for a in svc.assets.list()]
    assert prepared_assets == ["/from-python.txt"], prepared_assets

    # Builds: from the prepared version, with dependencies as the JSON string the API takes.
    deps = [{"name": "twilio", "version": "3.29.2"}]
    build = svc.builds.create(asset_versions=[version_sid], dependencies=json.dumps(deps), runtime="node18")
    assert build.sid.startswith("ZB")
    assert build.status == "building", build.status
    assert [v["sid"] for v in build.asset_versions] == [version_sid], build.asset_versions
    assert build.asset_versions[0]["path"] == "/from-python.txt"
    assert build.asset_versions[0]["visibility"] == "public"
    assert build.dependencies == deps, build.dependencies
    assert build.runtime == "node18"
    # Poll the Status sub-resource until the build step is done, as the toolkit does.
    deadline = time.monotonic() + 60
    status = svc.builds(build.sid).build_status().fetch()
    while status.status == "building" and time.monotonic() < deadline:
        time.sleep(0.01)
        status = svc.builds(build.sid).build_status().fetch()
    assert status.status == "completed" and status.sid == build.sid, status.status
    assert svc.builds(build.sid).fetch().status == "completed"
    assert [b.sid for b in svc.builds.list()] == [build.sid]
    err = expect_error(400, lambda: svc.builds.create())
    assert err.code == 20001 and "At least one" in err.msg, err.msg

    # Deployments.
    dep = svc.environments(env.sid).deployments.create(build_sid=build.sid)
    assert dep.sid.startswith("ZD") and dep.build_sid == build.sid and dep.environment_sid == env.sid
    assert svc.environments(env.sid).fetch().build_sid == build.sid
    expect_error(409, lambda: svc.environments(env.sid).deployments.create(build_sid=build.sid))
    deps_listed = [d.sid for d in svc.environments(env.sid).deployments.list()]
    assert deps_listed == [dep.sid], deps_listed

    # Variables.
    var = svc.environments(env.sid).variables.create(key="GREETING", value="hello")
    assert var.sid.startswith("ZV") and var.key == "GREETING" and var.value == "hello"
    var = svc.environments(env.sid).variables(var.sid).update(value="bonjour")
    assert var.value == "bonjour"
    assert [v.key for v in svc.environments(env.sid).variables.list()] == ["GREETING"]
    assert svc.environments(env.sid).variables(var.sid).delete() is True

    print("DEPLOYED_DOMAIN=%s" % env.domain_name)
    print("twilio-python: %d requests, all answered as expected" % len(http.urls))


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.exit(1)

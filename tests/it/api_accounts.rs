//! Accounts API through the real binary: authentication failures, subaccounts, API keys,
//! auth-token rotation (and its effect on protected-asset signatures), suspended accounts and
//! the failed-authentication limiter.

use crate::harness::*;
use serde_json::Value;
use std::net::SocketAddr;

const SECRET_MP3: &[u8] = b"ID3 protected bytes of the main account";
const TENANT_PAGE: &[u8] = b"the tenant's public page";
const TENANT_MP3: &[u8] = b"ID3 protected bytes of a subaccount";

/// A data directory with the main account's deployed project (`example`: a public
/// `/hello.txt` and a protected `/secret.mp3`) and a subaccount `Tenant` with its own deployed
/// protected `/tenant.mp3`, prepared before the server starts.
struct Fixture {
    _project: tempfile::TempDir,
    data: tempfile::TempDir,
    sid: String,
    token: String,
    label: String,
    sub_sid: String,
    sub_token: String,
    sub_label: String,
}

fn fixture() -> Fixture {
    use assetd::model::{AssetPath, Visibility};
    let project = project(&[
        ("hello.txt", b"hello"),
        ("secret.protected.mp3", SECRET_MP3),
    ]);
    let data = tempfile::tempdir().unwrap();
    let label = label_of(&import(project.path(), data.path(), "example", &[]));
    let (sid, token) = credentials(data.path());
    let store = assetd::store::Store::open(data.path(), 1 << 20).unwrap();
    let (sub, sub_label) = store
        .write(|tx| {
            let sub = tx.create_subaccount(&sid, "Tenant")?;
            let svc = tx.create_service(&sub.sid, "tenant", "tenant")?;
            let env = tx.create_environment(&svc, "dev-environment", Some("dev"))?;
            let put = tx.put_blob(&mut &TENANT_MP3[..], None, None)?;
            let asset = tx.asset_named(&svc, "/tenant.mp3")?;
            let path = AssetPath::parse("/tenant.mp3")?;
            let v = tx.create_version(
                &asset,
                &path,
                Visibility::Protected,
                "audio/mpeg",
                &put.digest,
            )?;
            let put = tx.put_blob(&mut &TENANT_PAGE[..], None, None)?;
            let asset = tx.asset_named(&svc, "/tenant.txt")?;
            let path = AssetPath::parse("/tenant.txt")?;
            let page =
                tx.create_version(&asset, &path, Visibility::Public, "text/plain", &put.digest)?;
            let mut build =
                tx.create_build(&svc, &[v.sid, page.sid], serde_json::json!([]), None)?;
            tx.build_now(&mut build)?;
            tx.deploy(&env, &build.sid)?;
            Ok((sub, env.label))
        })
        .unwrap();
    drop(store);
    Fixture {
        _project: project,
        data,
        sid,
        token,
        label,
        sub_sid: sub.sid,
        sub_token: sub.auth_token,
        sub_label,
    }
}

/// One API call as `user:pass` (`None`: no Authorization header); returns status, JSON body
/// (`Null` when empty) and the raw response.
fn call(
    addr: SocketAddr,
    creds: Option<(&str, &str)>,
    method: &str,
    target: &str,
    form: &str,
) -> (u16, Value, Response) {
    let auth = creds.map(|(u, p)| basic(u, p));
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let r = request(addr, method, "127.0.0.1", target, &headers, form.as_bytes());
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{method} {target}: body is not JSON ({e}): {}", r.text()))
    };
    (r.status, v, r)
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{want_code}"),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// GET of a protected asset on `label`, signed with `token` (`None`: unsigned).
fn protected(srv: &Server, label: &str, path: &str, token: Option<&str>) -> Response {
    let host = format!("{label}.localhost:{}", srv.addr.port());
    match token {
        Some(t) => {
            let sig = assetd::sign::compute(t, &format!("http://{host}{path}"), &[]);
            srv.request("GET", &host, path, &[("X-Twilio-Signature", &sig)])
        }
        None => srv.get(&host, path),
    }
}

/// RFC 2822 as the 2010-04-01 API writes it: `Thu, 26 Nov 2026 21:00:00 +0000`.
fn is_rfc2822(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 31 && s.ends_with(" +0000") && s.as_bytes()[3] == b','
}

#[test]
fn missing_or_wrong_credentials_get_401_with_twilio_error() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let (s, b, r) = call(a, None, "GET", "/2010-04-01/Accounts.json", "");
    assert_error(s, &b, 401, 20003);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let (s, b, _) = call(
        a,
        Some((&f.sid, "0123456789abcdef0123456789abcdef")),
        "GET",
        "/2010-04-01/Accounts",
        "",
    );
    assert_error(s, &b, 401, 20003);
    // An unknown account SID, a key SID with a wrong secret, a non-SID user: all 401.
    let (s, b, _) = call(
        a,
        Some(("AC00000000000000000000000000000000", &f.token)),
        "GET",
        "/2010-04-01/Accounts",
        "",
    );
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(
        a,
        Some(("SK00000000000000000000000000000000", &f.token)),
        "GET",
        "/v1/AuthTokens/Secondary",
        "",
    );
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(
        a,
        Some(("admin", &f.token)),
        "POST",
        "/v1/AuthTokens/Promote",
        "",
    );
    assert_error(s, &b, 401, 20003);
    // Another account's token does not open this one.
    let (s, b, _) = call(
        a,
        Some((&f.sid, &f.sub_token)),
        "GET",
        "/2010-04-01/Accounts",
        "",
    );
    assert_error(s, &b, 401, 20003);
    // Not Basic at all.
    let r = request(
        a,
        "GET",
        "127.0.0.1",
        "/2010-04-01/Accounts",
        &[("Authorization", &format!("Bearer {}", f.token))],
        b"",
    );
    assert_eq!(r.status, 401);
    // The right credentials work.
    let (s, _, _) = call(
        a,
        Some((&f.sid, &f.token)),
        "GET",
        "/2010-04-01/Accounts",
        "",
    );
    assert_eq!(s, 200);
}

#[test]
fn subaccounts_create_list_fetch_suspend_close() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let main = Some((f.sid.as_str(), f.token.as_str()));

    // Create: 201, Twilio's 2010 fields.
    let (s, acct, _) = call(
        a,
        main,
        "POST",
        "/2010-04-01/Accounts.json",
        "FriendlyName=Shop+%231",
    );
    assert_eq!(s, 201, "{acct}");
    let sub_sid = acct["sid"].as_str().unwrap().to_string();
    let sub_token = acct["auth_token"].as_str().unwrap().to_string();
    assert!(sub_sid.starts_with("AC") && sub_sid.len() == 34, "{acct}");
    assert_eq!(sub_token.len(), 32);
    assert_eq!(acct["friendly_name"], "Shop #1");
    assert_eq!(acct["owner_account_sid"], f.sid.as_str());
    assert_eq!(acct["status"], "active");
    assert_eq!(acct["type"], "Full");
    assert!(
        is_rfc2822(&acct["date_created"]) && is_rfc2822(&acct["date_updated"]),
        "{acct}"
    );
    assert_eq!(acct["uri"], format!("/2010-04-01/Accounts/{sub_sid}.json"));
    assert_eq!(
        acct["subresource_uris"]["keys"],
        format!("/2010-04-01/Accounts/{sub_sid}/Keys.json")
    );

    // Without FriendlyName: Twilio's default name.
    let (s, unnamed, _) = call(a, main, "POST", "/2010-04-01/Accounts", "");
    assert_eq!(s, 201);
    assert!(
        unnamed["friendly_name"]
            .as_str()
            .unwrap()
            .starts_with("SubAccount Created at "),
        "{unnamed}"
    );
    let (s, b, _) = call(
        a,
        main,
        "POST",
        "/2010-04-01/Accounts",
        &format!("FriendlyName={}", "x".repeat(256)),
    );
    assert_error(s, &b, 400, 20001);

    // List: the caller first, then its subaccounts (the fixture's Tenant, Shop #1, unnamed).
    let (s, list, _) = call(a, main, "GET", "/2010-04-01/Accounts.json", "");
    assert_eq!(s, 200, "{list}");
    let sids: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids.len(), 4, "{list}");
    assert_eq!(sids[0], f.sid);
    assert!(sids.contains(&sub_sid.as_str()) && sids.contains(&f.sub_sid.as_str()));
    assert_eq!(list["accounts"][0]["owner_account_sid"], f.sid.as_str());
    assert_eq!(list["page"], 0);
    assert_eq!(list["page_size"], 50);
    assert_eq!(list["start"], 0);
    assert_eq!(list["end"], 3);
    assert_eq!(
        list["first_page_uri"],
        "/2010-04-01/Accounts.json?PageSize=50&Page=0"
    );
    assert_eq!(list["uri"], "/2010-04-01/Accounts.json?PageSize=50&Page=0");
    assert_eq!(list["next_page_uri"], Value::Null);
    assert_eq!(list["previous_page_uri"], Value::Null);

    // Paging: follow next_page_uri (relative) until null.
    let mut uri = "/2010-04-01/Accounts.json?PageSize=3".to_string();
    let mut paged = Vec::new();
    loop {
        let (s, page, _) = call(a, main, "GET", &uri, "");
        assert_eq!(s, 200, "{page}");
        for x in page["accounts"].as_array().unwrap() {
            paged.push(x["sid"].as_str().unwrap().to_string());
        }
        match page["next_page_uri"].as_str() {
            Some(next) => uri = next.to_string(),
            None => {
                assert_eq!(page["page"], 1);
                assert_eq!(page["start"], 3);
                assert_eq!(page["end"], 3);
                assert_eq!(
                    page["previous_page_uri"],
                    "/2010-04-01/Accounts.json?PageSize=3&Page=0"
                );
                break;
            }
        }
    }
    assert_eq!(paged, sids);
    let (s, b, _) = call(a, main, "GET", "/2010-04-01/Accounts?PageSize=0", "");
    assert_error(s, &b, 400, 20001);
    // Filters.
    let (_, filtered, _) = call(
        a,
        main,
        "GET",
        "/2010-04-01/Accounts?FriendlyName=Shop+%231",
        "",
    );
    assert_eq!(filtered["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["accounts"][0]["sid"], sub_sid.as_str());

    // Fetch: itself and its subaccount; anything else 404.
    let (s, me, _) = call(
        a,
        main,
        "GET",
        &format!("/2010-04-01/Accounts/{}.json", f.sid),
        "",
    );
    assert_eq!(s, 200);
    assert_eq!(me["auth_token"], f.token.as_str());
    let (s, fetched, _) = call(
        a,
        main,
        "GET",
        &format!("/2010-04-01/Accounts/{sub_sid}"),
        "",
    );
    assert_eq!(s, 200);
    assert_eq!(fetched, acct);
    let (s, b, _) = call(
        a,
        main,
        "GET",
        "/2010-04-01/Accounts/AC00000000000000000000000000000000.json",
        "",
    );
    assert_error(s, &b, 404, 20404);

    // The subaccount authenticates with its own token; it sees itself only, not its owner,
    // and cannot create subaccounts or change its own status.
    let sub = Some((sub_sid.as_str(), sub_token.as_str()));
    let (s, own, _) = call(a, sub, "GET", "/2010-04-01/Accounts.json", "");
    assert_eq!(s, 200);
    assert_eq!(own["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(own["accounts"][0]["sid"], sub_sid.as_str());
    let (s, b, _) = call(
        a,
        sub,
        "GET",
        &format!("/2010-04-01/Accounts/{}", f.sid),
        "",
    );
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(
        a,
        sub,
        "GET",
        &format!("/2010-04-01/Accounts/{}", f.sub_sid),
        "",
    );
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(
        a,
        sub,
        "POST",
        "/2010-04-01/Accounts",
        "FriendlyName=nested",
    );
    assert_error(s, &b, 403, 20403);
    let (s, b, _) = call(
        a,
        sub,
        "POST",
        &format!("/2010-04-01/Accounts/{sub_sid}"),
        "Status=closed",
    );
    assert_error(s, &b, 403, 20403);
    let (s, renamed, _) = call(
        a,
        sub,
        "POST",
        &format!("/2010-04-01/Accounts/{sub_sid}"),
        "FriendlyName=Shop+one",
    );
    assert_eq!(s, 200, "{renamed}");
    assert_eq!(renamed["friendly_name"], "Shop one");
    // The main account cannot suspend itself.
    let (s, b, _) = call(
        a,
        main,
        "POST",
        &format!("/2010-04-01/Accounts/{}", f.sid),
        "Status=suspended",
    );
    assert_error(s, &b, 403, 20403);
    let (s, b, _) = call(
        a,
        main,
        "POST",
        &format!("/2010-04-01/Accounts/{sub_sid}"),
        "Status=frozen",
    );
    assert_error(s, &b, 400, 20001);

    // Suspend: its credentials stop working; reactivate: they work again.
    let path = format!("/2010-04-01/Accounts/{sub_sid}.json");
    let (s, susp, _) = call(a, main, "POST", &path, "Status=suspended");
    assert_eq!(s, 200, "{susp}");
    assert_eq!(susp["status"], "suspended");
    let (s, b, _) = call(a, sub, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);
    let (_, suspended_only, _) = call(a, main, "GET", "/2010-04-01/Accounts?Status=suspended", "");
    assert_eq!(suspended_only["accounts"].as_array().unwrap().len(), 1);
    let (s, act, _) = call(a, main, "POST", &path, "Status=active");
    assert_eq!((s, act["status"].as_str()), (200, Some("active")));
    assert_eq!(call(a, sub, "GET", "/2010-04-01/Accounts", "").0, 200);

    // Close: final.
    let (s, closed, _) = call(a, main, "POST", &path, "Status=closed");
    assert_eq!((s, closed["status"].as_str()), (200, Some("closed")));
    let (s, b, _) = call(a, sub, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(a, main, "POST", &path, "Status=active");
    assert_error(s, &b, 400, 20001);
    let (s, b, _) = call(a, main, "POST", &path, "FriendlyName=again");
    assert_error(s, &b, 400, 20001);
    let (_, still, _) = call(a, main, "GET", &path, "");
    assert_eq!(still["status"], "closed");
}

#[test]
fn subaccount_cannot_see_the_main_accounts_services() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let main = Some((f.sid.as_str(), f.token.as_str()));
    let sub = Some((f.sub_sid.as_str(), f.sub_token.as_str()));
    let (s, mine, _) = call(a, main, "GET", "/v1/Services/example", "");
    assert_eq!(s, 200, "{mine}");
    let svc = mine["sid"].as_str().unwrap().to_string();
    // By SID and by unique name: 404, exactly as for a service that does not exist.
    for target in [
        format!("/v1/Services/{svc}"),
        "/v1/Services/example".to_string(),
    ] {
        let (s, b, _) = call(a, sub, "GET", &target, "");
        assert_error(s, &b, 404, 20404);
    }
    let (s, b, _) = call(
        a,
        sub,
        "GET",
        &format!("/v1/Services/{svc}/Environments"),
        "",
    );
    assert_error(s, &b, 404, 20404);
    let (s, list, _) = call(a, sub, "GET", "/v1/Services", "");
    assert_eq!(s, 200, "{list}");
    let names: Vec<&str> = list["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["unique_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tenant"]);
    // Nor the other way round: the main account does not see its subaccount's services.
    let (s, b, _) = call(a, main, "GET", "/v1/Services/tenant", "");
    assert_error(s, &b, 404, 20404);
}

#[test]
fn api_keys_create_list_fetch_delete_and_authenticate() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let main = Some((f.sid.as_str(), f.token.as_str()));
    let keys = format!("/2010-04-01/Accounts/{}/Keys", f.sid);

    let (s, key, _) = call(
        a,
        main,
        "POST",
        &format!("{keys}.json"),
        "FriendlyName=deploy+bot",
    );
    assert_eq!(s, 201, "{key}");
    let key_sid = key["sid"].as_str().unwrap().to_string();
    let secret = key["secret"].as_str().unwrap().to_string();
    assert!(key_sid.starts_with("SK") && key_sid.len() == 34, "{key}");
    assert!(secret.len() >= 32, "{key}");
    assert_eq!(key["friendly_name"], "deploy bot");
    assert!(
        is_rfc2822(&key["date_created"]) && is_rfc2822(&key["date_updated"]),
        "{key}"
    );
    let (s, b, _) = call(
        a,
        main,
        "POST",
        &keys,
        &format!("FriendlyName={}", "k".repeat(65)),
    );
    assert_error(s, &b, 400, 20001);

    // List and fetch never show the secret.
    let (s, list, _) = call(a, main, "GET", &keys, "");
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["keys"].as_array().unwrap().len(), 1);
    assert_eq!(list["keys"][0]["sid"], key_sid.as_str());
    assert!(list["keys"][0].get("secret").is_none(), "{list}");
    assert_eq!(list["uri"], format!("{keys}.json?PageSize=50&Page=0"));
    let (s, one, _) = call(a, main, "GET", &format!("{keys}/{key_sid}.json"), "");
    assert_eq!(s, 200);
    assert!(one.get("secret").is_none(), "{one}");
    assert_eq!(one["friendly_name"], "deploy bot");
    let (s, renamed, _) = call(
        a,
        main,
        "POST",
        &format!("{keys}/{key_sid}"),
        "FriendlyName=ci",
    );
    assert_eq!((s, renamed["friendly_name"].as_str()), (200, Some("ci")));

    // The key authenticates as its account: past authentication, a route that does not exist
    // is 404 and management endpoints are 403 (not 401); with a wrong secret it is 401.
    let with_key = Some((key_sid.as_str(), secret.as_str()));
    let (s, b, _) = call(a, with_key, "GET", "/v1/NoSuchThing", "");
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(
        a,
        Some((&key_sid, "wrong-secret")),
        "GET",
        "/v1/NoSuchThing",
        "",
    );
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(a, Some((&key_sid, &f.token)), "GET", "/v1/NoSuchThing", "");
    assert_error(s, &b, 401, 20003);

    // A key cannot manage accounts, keys or auth tokens.
    for (method, target) in [
        ("GET", "/2010-04-01/Accounts".to_string()),
        ("POST", "/2010-04-01/Accounts".to_string()),
        ("GET", format!("/2010-04-01/Accounts/{}", f.sid)),
        ("GET", keys.clone()),
        ("POST", keys.clone()),
        ("DELETE", format!("{keys}/{key_sid}")),
        ("POST", "/v1/AuthTokens/Secondary".to_string()),
        ("DELETE", "/v1/AuthTokens/Secondary".to_string()),
        ("POST", "/v1/AuthTokens/Promote".to_string()),
    ] {
        let (s, b, _) = call(a, with_key, method, &target, "");
        assert_error(s, &b, 403, 20403);
        assert!(b["message"].as_str().unwrap().contains("API key"), "{b}");
    }

    // Keys are per account: the subaccount's key is not visible under the main account,
    // and the subaccount cannot reach the main account's keys.
    let sub = Some((f.sub_sid.as_str(), f.sub_token.as_str()));
    let sub_keys = format!("/2010-04-01/Accounts/{}/Keys", f.sub_sid);
    let (s, sub_key, _) = call(a, sub, "POST", &sub_keys, "FriendlyName=tenant");
    assert_eq!(s, 201);
    let sub_key_sid = sub_key["sid"].as_str().unwrap();
    let (s, b, _) = call(a, main, "GET", &format!("{keys}/{sub_key_sid}"), "");
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(a, sub, "GET", &keys, "");
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(a, sub, "DELETE", &format!("{keys}/{key_sid}"), "");
    assert_error(s, &b, 404, 20404);
    // The owner manages its subaccount's keys.
    let (s, owner_view, _) = call(a, main, "GET", &sub_keys, "");
    assert_eq!(s, 200);
    assert_eq!(owner_view["keys"][0]["sid"], sub_key_sid);

    // Delete: 204, then the key no longer authenticates and is gone.
    let (s, b, r) = call(a, main, "DELETE", &format!("{keys}/{key_sid}"), "");
    assert_eq!((s, &b), (204, &Value::Null));
    assert!(r.body.is_empty());
    let (s, b, _) = call(a, with_key, "GET", "/v1/NoSuchThing", "");
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(a, main, "GET", &format!("{keys}/{key_sid}"), "");
    assert_error(s, &b, 404, 20404);
    let (s, b, _) = call(a, main, "DELETE", &format!("{keys}/{key_sid}"), "");
    assert_error(s, &b, 404, 20404);
}

#[test]
fn token_rotation_moves_api_and_signatures_to_the_new_token() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let old = Some((f.sid.as_str(), f.token.as_str()));
    assert_eq!(
        protected(&srv, &f.label, "/secret.mp3", Some(&f.token)).status,
        200
    );

    // Nothing to promote or delete yet.
    let (s, b, _) = call(a, old, "POST", "/v1/AuthTokens/Promote", "");
    assert_error(s, &b, 400, 20001);
    let (s, b, _) = call(a, old, "DELETE", "/v1/AuthTokens/Secondary", "");
    assert_error(s, &b, 404, 20404);

    // Create, delete, create again: each creation is a fresh token.
    let (s, first, _) = call(a, old, "POST", "/v1/AuthTokens/Secondary", "");
    assert_eq!(s, 201, "{first}");
    let (s, _, _) = call(a, old, "DELETE", "/v1/AuthTokens/Secondary", "");
    assert_eq!(s, 204);
    let (s, sec, _) = call(a, old, "POST", "/v1/AuthTokens/Secondary", "");
    assert_eq!(s, 201, "{sec}");
    assert_eq!(sec["account_sid"], f.sid.as_str());
    let new_token = sec["secondary_auth_token"].as_str().unwrap().to_string();
    assert_eq!(new_token.len(), 32);
    assert_ne!(new_token, f.token);
    assert_ne!(sec["secondary_auth_token"], first["secondary_auth_token"]);
    assert!(
        sec["date_created"].as_str().unwrap().ends_with('Z'),
        "{sec}"
    );
    assert!(
        sec["date_updated"].as_str().unwrap().ends_with('Z'),
        "{sec}"
    );
    assert_eq!(sec["url"], "http://127.0.0.1/v1/AuthTokens/Secondary");

    // Before promotion: the old token still works (API and signatures); the secondary does
    // not authenticate yet.
    assert_eq!(call(a, old, "GET", "/2010-04-01/Accounts", "").0, 200);
    assert_eq!(
        protected(&srv, &f.label, "/secret.mp3", Some(&f.token)).status,
        200
    );
    let new = Some((f.sid.as_str(), new_token.as_str()));
    let (s, b, _) = call(a, new, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);

    // Promote.
    let (s, promoted, _) = call(a, old, "POST", "/v1/AuthTokens/Promote", "");
    assert_eq!(s, 200, "{promoted}");
    assert_eq!(promoted["account_sid"], f.sid.as_str());
    assert_eq!(promoted["auth_token"], new_token.as_str());
    assert_eq!(promoted["url"], "http://127.0.0.1/v1/AuthTokens/Promote");
    assert!(promoted["date_updated"].as_str().unwrap().ends_with('Z'));

    // After: the old token is refused by the API and no longer signs protected assets.
    let (s, b, _) = call(a, old, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);
    let (s, me, _) = call(
        a,
        new,
        "GET",
        &format!("/2010-04-01/Accounts/{}", f.sid),
        "",
    );
    assert_eq!(s, 200);
    assert_eq!(me["auth_token"], new_token.as_str());
    let r = protected(&srv, &f.label, "/secret.mp3", Some(&f.token));
    assert_eq!(r.status, 403);
    let r = protected(&srv, &f.label, "/secret.mp3", Some(&new_token));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, SECRET_MP3);
    // The secondary slot is empty again.
    let (s, b, _) = call(a, new, "POST", "/v1/AuthTokens/Promote", "");
    assert_error(s, &b, 400, 20001);
    // A subaccount's token is untouched by its owner's rotation.
    assert_eq!(
        protected(&srv, &f.sub_label, "/tenant.mp3", Some(&f.sub_token)).status,
        200
    );
}

#[test]
fn suspended_and_closed_subaccounts_lose_api_and_every_asset() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let main = Some((f.sid.as_str(), f.token.as_str()));
    let sub = Some((f.sub_sid.as_str(), f.sub_token.as_str()));
    let path = format!("/2010-04-01/Accounts/{}", f.sub_sid);

    // Its key too.
    let (s, key, _) = call(a, sub, "POST", &format!("{path}/Keys"), "FriendlyName=k");
    assert_eq!(s, 201);
    let with_key = Some((
        key["sid"].as_str().unwrap(),
        key["secret"].as_str().unwrap(),
    ));
    assert_eq!(call(a, with_key, "GET", "/v1/NoSuchThing", "").0, 404);

    // (public, signed protected, unsigned protected) statuses of the tenant's assets.
    let tenant_assets = |srv: &Server| {
        (
            protected(srv, &f.sub_label, "/tenant.txt", None).status,
            protected(srv, &f.sub_label, "/tenant.mp3", Some(&f.sub_token)).status,
            protected(srv, &f.sub_label, "/tenant.mp3", None).status,
        )
    };
    let r = protected(&srv, &f.sub_label, "/tenant.mp3", Some(&f.sub_token));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, TENANT_MP3);
    assert_eq!(tenant_assets(&srv), (200, 200, 403));

    let (s, _, _) = call(a, main, "POST", &path, "Status=suspended");
    assert_eq!(s, 200);
    let (s, b, _) = call(a, sub, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);
    let (s, b, _) = call(a, with_key, "GET", "/v1/NoSuchThing", "");
    assert_error(s, &b, 401, 20003);
    // Regression: public assets of a suspended subaccount were still served. A suspended
    // account serves nothing, and answers as if the asset did not exist.
    assert_eq!(tenant_assets(&srv), (404, 404, 404));
    // The main account's own assets are unaffected.
    assert_eq!(
        protected(&srv, &f.label, "/secret.mp3", Some(&f.token)).status,
        200
    );
    assert_eq!(protected(&srv, &f.label, "/hello.txt", None).status, 200);

    let (s, _, _) = call(a, main, "POST", &path, "Status=active");
    assert_eq!(s, 200);
    assert_eq!(tenant_assets(&srv), (200, 200, 403));
    assert_eq!(call(a, with_key, "GET", "/v1/NoSuchThing", "").0, 404);

    let (s, _, _) = call(a, main, "POST", &path, "Status=closed");
    assert_eq!(s, 200);
    assert_eq!(tenant_assets(&srv), (404, 404, 404));
    let (s, b, _) = call(a, sub, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 401, 20003);

    // Still dark after a restart.
    drop(srv);
    let srv = Server::start(f.data.path(), &[]);
    assert_eq!(tenant_assets(&srv), (404, 404, 404));
    assert_eq!(protected(&srv, &f.label, "/hello.txt", None).status, 200);
}

#[test]
fn repeated_failed_authentication_gets_429_with_retry_after() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let wrong = Some((f.sid.as_str(), "ffffffffffffffffffffffffffffffff"));
    let max = assetd::http::api::auth::MAX_FAILURES;
    for i in 0..max {
        let (s, b, _) = call(a, wrong, "GET", "/2010-04-01/Accounts", "");
        assert_eq!(s, 401, "attempt {i}: {b}");
    }
    let (s, b, r) = call(a, wrong, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 429, 20429);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(
        (1..=assetd::http::api::auth::WINDOW.as_secs()).contains(&retry),
        "{retry}"
    );
    // During the lockout even the correct credentials are refused from this address (this is
    // what slows down guessing); other addresses are unaffected (unit-tested in auth.rs).
    let right = Some((f.sid.as_str(), f.token.as_str()));
    let (s, b, r) = call(a, right, "GET", "/2010-04-01/Accounts", "");
    assert_error(s, &b, 429, 20429);
    assert!(r.header("retry-after").is_some());
    // A request without credentials guesses nothing: 401 as ever.
    let (s, b, _) = call(a, None, "POST", "/v1/AuthTokens/Promote", "");
    assert_error(s, &b, 401, 20003);
    // Asset serving is not part of the API and is not limited.
    let host = format!("{}.localhost", f.label);
    assert_eq!(srv.get(&host, "/hello.txt").status, 200);
}

/// Regression (black-box test): requests without `Authorization` counted as failed logins, so
/// one anonymous client behind a shared address (NAT, the trusted proxy) locked everyone out.
#[test]
fn anonymous_requests_never_lock_out_correct_credentials() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    for i in 0..20 {
        let (s, b, _) = call(a, None, "GET", "/v1/Services", "");
        assert_error(s, &b, 401, 20003);
        assert!(b.to_string().contains("Authentication"), "attempt {i}: {b}");
    }
    let right = Some((f.sid.as_str(), f.token.as_str()));
    let (s, b, _) = call(a, right, "GET", "/v1/Services", "");
    assert_eq!(s, 200, "{b}");
}

/// Regression (black-box test): failures on a subaccount or an API key from a shared address
/// locked the main account out as well.
#[test]
fn failures_on_a_subaccount_do_not_lock_out_the_main_account() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &[]);
    let a = srv.addr;
    let max = assetd::http::api::auth::MAX_FAILURES;
    let wrong_sub = Some((f.sub_sid.as_str(), "ffffffffffffffffffffffffffffffff"));
    for _ in 0..max {
        let (s, b, _) = call(a, wrong_sub, "GET", "/v1/Services", "");
        assert_error(s, &b, 401, 20003);
    }
    let sub = Some((f.sub_sid.as_str(), f.sub_token.as_str()));
    let (s, b, _) = call(a, sub, "GET", "/v1/Services", "");
    assert_error(s, &b, 429, 20429);
    let right = Some((f.sid.as_str(), f.token.as_str()));
    let (s, b, _) = call(a, right, "GET", "/v1/Services", "");
    assert_eq!(s, 200, "{b}");
}

/// Behind a trusted proxy the limiter counts the forwarded client address, so one client's
/// failures do not lock out another client of the same proxy; an untrusted peer's
/// `X-Forwarded-For` is ignored.
#[test]
fn behind_a_trusted_proxy_failures_count_per_forwarded_client() {
    let f = fixture();
    let srv = Server::start(f.data.path(), &["--trusted-proxy", "127.0.0.1"]);
    let wrong = basic(&f.sub_sid, "ffffffffffffffffffffffffffffffff");
    let right = basic(&f.sub_sid, &f.sub_token);
    let from = |client: &str, auth: &str| {
        request(
            srv.addr,
            "GET",
            "127.0.0.1",
            "/v1/Services",
            &[("Authorization", auth), ("X-Forwarded-For", client)],
            b"",
        )
        .status
    };
    for _ in 0..assetd::http::api::auth::MAX_FAILURES {
        assert_eq!(from("198.51.100.1", &wrong), 401);
    }
    assert_eq!(from("198.51.100.1", &right), 429);
    // The proxy appends what it saw: a client cannot escape by prepending its own claim.
    assert_eq!(from("192.0.2.99, 198.51.100.1", &right), 429);
    assert_eq!(from("198.51.100.2", &right), 200);
}

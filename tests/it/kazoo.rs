//! Kazoo conformance: the requests of Kazoo 4.3's crossbar documents
//! (`basics.md`, `faxboxes.md`, `faxes.md`) and the bodies Monster UI
//! sends, checked against what those documents say. Each test names the
//! document its facts come from (docs/kazoo.md 16 says where each is
//! summed up).

use super::*;

/// The envelope keys of every crossbar reply (basics.md "Response
/// Envelope", and crossbar's `create_resp_envelope`).
fn assert_envelope(r: &RawResponse, token: &str) {
    let body = r.json();
    for key in [
        "data",
        "status",
        "request_id",
        "node",
        "version",
        "timestamp",
        "auth_token",
    ] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body["auth_token"], token);
    if body["status"] == "success" {
        assert!(body["revision"].is_string(), "{body}");
    }
}

#[test]
fn basics_md_a_browser_preflight_needs_no_token_and_every_reply_allows_the_origin() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let path = format!("{}/v2/accounts/{}/faxboxes", b.base, acme.id);
    // What a browser sends before Monster UI's first PUT from its own origin.
    let r = b
        .http
        .request(
            "OPTIONS",
            &path,
            &[
                ("Origin", "https://monster.example.com"),
                ("Access-Control-Request-Method", "PUT"),
                (
                    "Access-Control-Request-Headers",
                    "content-type,x-auth-token",
                ),
            ],
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{m} in {methods}");
    }
    let allowed = r.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("x-auth-token") && allowed.contains("content-type"));
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("x-auth-token")
    );
    // Answers, errors included, carry the headers too.
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxboxes", acme.id),
        None,
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let token = b.token(&acme);
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/faxboxes", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_envelope(&r, &token);
}

#[test]
fn an_appliance_may_restrict_cors_to_its_own_origins() {
    let b = TestBox::start_with(|o| o.cors_origins = vec!["https://pbx.example.com".into()]);
    let ask = |origin: &str| {
        b.http
            .request(
                "OPTIONS",
                &format!("{}/v2/api_auth", b.base),
                &[("Origin", origin), ("Access-Control-Request-Method", "PUT")],
                None,
            )
            .unwrap()
    };
    let r = ask("https://pbx.example.com");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://pbx.example.com")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = ask("https://elsewhere.example.com");
    assert_eq!(r.header("access-control-allow-origin"), None);
}

/// faxboxes.md, request by request, with the bodies Monster UI sends.
///
/// Long on purpose: one faxbox walked through the page's requests in its order
/// (list, create, read, filter, replace, patch, a refused edit, tunnelled
/// verbs, delete), each step checking what the one before it left.
#[test]
fn faxboxes_md_every_request_and_monster_uis_bodies() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let path = format!("/v2/accounts/{}/faxboxes", acme.id);

    // GET /faxboxes: an empty listing, paged (basics.md "Pagination").
    let r = b.call("GET", &path, Some(&token), None);
    assert_eq!(r.status, 200);
    assert_envelope(&r, &token);
    assert_eq!(r.json()["data"], json!([]));
    assert_eq!(r.json()["page_size"], 0);

    // PUT /faxboxes with what Monster UI's fax app sends: `ui_metadata`,
    // retries as text, the "main faxbox" owned by the account itself, and
    // the schema's sms and callback notifications (faxbox.json).
    let monster = json!({
        "name": "Main Faxbox",
        "caller_name": "Acme",
        "caller_id": "+15550001111",
        "fax_header": "Acme Main",
        "fax_identity": "+15550001111",
        "fax_timezone": "America/New_York",
        "retries": "3",
        "owner_id": acme.id.as_str(),
        "smtp_permission_list": [],
        "media": {"fax_option": "false"},
        "notifications": {
            "inbound": {
                "email": {"send_to": "frontdesk@acme.example"},
                "sms": {"send_to": ["+15550002222"]},
                "callback": {"url": "https://hooks.acme.example/fax", "method": "post", "type": "json"}
            },
            "outbound": {"email": {"send_to": ["a@acme.example", "b@acme.example"]}}
        },
        "ui_metadata": {"version": "4.3-62", "ui": "monster-ui", "origin": "voip"}
    });
    let r = b.call("PUT", &path, Some(&token), Some(json!({ "data": monster })));
    assert_eq!(r.status, 201, "{}", r.json());
    assert_envelope(&r, &token);
    let created = r.json()["data"].clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["retries"], 3);
    assert_eq!(created["owner_id"], acme.id.as_str());
    assert_eq!(created["media"]["fax_option"], false);
    assert_eq!(created["ui_metadata"], monster["ui_metadata"]);
    assert_eq!(
        created["notifications"]["inbound"]["sms"],
        monster["notifications"]["inbound"]["sms"]
    );
    assert_eq!(
        created["notifications"]["inbound"]["callback"],
        monster["notifications"]["inbound"]["callback"]
    );
    assert_eq!(
        created["notifications"]["inbound"]["email"]["send_to"],
        json!(["frontdesk@acme.example"])
    );
    assert!(created["smtp_email_address"].is_string());

    // GET /faxboxes/{id}: the same document, the client's keys included.
    let r = b.call("GET", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_envelope(&r, &token);
    assert_eq!(r.json()["data"]["ui_metadata"], monster["ui_metadata"]);

    // GET /faxboxes: the listing row is the document; filter_owner_id as
    // a user's dashboard asks.
    let r = b.call(
        "GET",
        &format!("{path}?filter_owner_id={}", acme.id),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"][0]["id"], id.as_str());
    assert_eq!(r.json()["start_key"], id.as_str());
    let r = b.call(
        "GET",
        &format!("{path}?filter_owner_id=someone-else"),
        Some(&token),
        None,
    );
    assert_eq!(r.json()["data"], json!([]));

    // POST /faxboxes/{id}: Monster UI sends back what it read, changed.
    let mut edited = created.clone();
    edited["name"] = json!("Front Desk");
    edited["ui_metadata"]["version"] = json!("4.3-63");
    let r = b.call(
        "POST",
        &format!("{path}/{id}"),
        Some(&token),
        Some(json!({ "data": edited })),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["name"], "Front Desk");
    assert_eq!(r.json()["data"]["ui_metadata"]["version"], "4.3-63");
    assert_eq!(
        r.json()["data"]["smtp_email_address"],
        created["smtp_email_address"]
    );

    // PATCH /faxboxes/{id}: a merge patch, `null` removes (basics.md
    // "Request Data").
    let r = b.call(
        "PATCH",
        &format!("{path}/{id}"),
        Some(&token),
        Some(json!({"data": {"fax_timezone": null, "ui_metadata": null, "flags": ["main"]}})),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let patched = r.json()["data"].clone();
    assert!(patched.get("fax_timezone").is_none(), "{patched}");
    assert!(patched.get("ui_metadata").is_none(), "{patched}");
    assert_eq!(patched["flags"], json!(["main"]));
    assert_eq!(patched["name"], "Front Desk");
    assert_eq!(
        patched["notifications"]["inbound"]["sms"],
        monster["notifications"]["inbound"]["sms"]
    );

    // Every broken rule at once, each with its path, rule, target and
    // value (crossbar's validation errors); nothing changes.
    let r = b.call(
        "POST",
        &format!("{path}/{id}"),
        Some(&token),
        Some(json!({"data": {
            "name": "x".repeat(129),
            "retries": -1,
            "attempts": 5,
            "media": {"fax_option": "sometimes"},
            "notifications": {
                "inbound": {"email": {"send_to": "not-an-address"}},
                "outbound": {"callback": {"url": "ftp://x", "method": "get"}}
            }
        }})),
    );
    assert_eq!(r.status, 400);
    assert_envelope(&r, &token);
    let body = r.json();
    assert_eq!(body["message"], "validation error");
    let errors = &body["data"];
    assert_eq!(errors["name"]["maxLength"]["target"], 128, "{body}");
    assert_eq!(errors["retries"]["minimum"]["target"], 0, "{body}");
    assert_eq!(errors["retries"]["minimum"]["value"], -1, "{body}");
    assert_eq!(errors["attempts"]["maximum"]["target"], 4, "{body}");
    assert_eq!(
        errors["media.fax_option"]["type"]["target"], "boolean",
        "{body}"
    );
    assert_eq!(
        errors["notifications.inbound.email.send_to"]["format"]["value"], "not-an-address",
        "{body}"
    );
    assert_eq!(
        errors["notifications.outbound.callback.url"]["pattern"]["target"],
        "^https?://"
    );
    assert_eq!(
        errors["notifications.outbound.callback.method"]["enum"]["target"],
        json!(["post", "put"])
    );
    let r = b.call("GET", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.json()["data"]["name"], "Front Desk");

    // A client limited to GET and POST tunnels the verb (basics.md
    // "Tunneling the HTTP Verb"): in the query string, or in the envelope.
    let r = b.call(
        "POST",
        &format!("{path}?verb=PUT"),
        Some(&token),
        Some(json!({"data": {"name": "Tunnelled"}})),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let tunnelled = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let r = b.call(
        "POST",
        &format!("{path}/{tunnelled}"),
        Some(&token),
        Some(json!({"data": {}, "verb": "DELETE"})),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["_read_only"]["deleted"], true);

    // DELETE /faxboxes/{id}.
    let r = b.call("DELETE", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["_read_only"]["deleted"], true);
    let r = b.call("GET", &format!("{path}/{id}"), Some(&token), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "bad_identifier");
}

#[test]
fn faxes_md_a_fax_is_created_listed_with_its_result_and_its_document_dropped() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let base = format!("/v2/accounts/{}/faxes", acme.id);

    // PUT /faxes with faxes.md's fields (the document uploaded in the same
    // request, its second method) and Monster UI's `ui_metadata`.
    let data = json!({
        "retries": 3,
        "from_name": "Test Fax",
        "from_number": "18884732963",
        "to_name": "To Name",
        "to_number": "18884732963",
        "ui_metadata": {"origin": "fax"}
    });
    let (ct, body) = multipart_body(&data, &[pdf_document("fax.pdf", text_pdf("faxes.md"))]);
    let r = b.raw("PUT", &base, Some(&token), Some(&ct), Some(body));
    assert_eq!(r.status, 201, "{}", r.json());
    assert_envelope(&r, &token);
    let job = r.json()["data"].clone();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["ui_metadata"], json!({"origin": "fax"}));
    // faxes.md's default tx_result before the first attempt.
    for key in [
        "success",
        "pages_sent",
        "fax_speed",
        "fax_bad_rows",
        "fax_receiver_id",
        "fax_error_correction",
        "error_message",
        "time_elapsed",
        "total_pages",
    ] {
        assert!(job["tx_result"].get(key).is_some(), "{key} in {job}");
    }
    assert_eq!(job["tx_result"]["success"], false);

    // GET /faxes/outbox: the listing row carries the whole tx_result, as
    // Monster UI's fax app reads `success` and `total_pages` from it.
    wait_for("the fax to be sent", Duration::from_secs(60), || {
        b.store
            .fax(&faxbox::model::FaxId(id.clone()))
            .unwrap()
            .status
            .is_some_and(JobStatus::is_terminal)
    });
    let r = b.call("GET", &format!("{base}/outbox"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_envelope(&r, &token);
    let row = &r.json()["data"][0];
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["status"], "completed");
    assert_eq!(row["tx_result"]["success"], true, "{row}");
    assert_eq!(row["tx_result"]["total_pages"], 1, "{row}");
    assert_eq!(row["tx_result"]["transferred_pages"], 1, "{row}");
    assert!(
        row["tx_result"]["transfer_rate"].as_u64().unwrap() > 0,
        "{row}"
    );
    assert_eq!(row["ui_metadata"], json!({"origin": "fax"}));
    assert_eq!(r.json()["start_key"], id.as_str());

    // GET /faxes/outbox/{id}.
    let r = b.call("GET", &format!("{base}/outbox/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"]["tx_result"]["ecm_used"],
        row["tx_result"]["ecm_used"]
    );

    // DELETE /faxes/outbox/{id}/attachment: the record stays, the document
    // goes.
    let r = b.call(
        "DELETE",
        &format!("{base}/outbox/{id}/attachment"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = b.call("GET", &format!("{base}/outbox/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    let r = b.call(
        "GET",
        &format!("{base}/outbox/{id}/attachment"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404);

    // DELETE /faxes/outbox/{id}.
    let r = b.call("DELETE", &format!("{base}/outbox/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["_read_only"]["deleted"], true);
    let r = b.call("GET", &format!("{base}/outbox/{id}"), Some(&token), None);
    assert_eq!(r.status, 404);
}

#[test]
fn api_authentication_md_keys_of_the_wrong_length_and_unknown_keys() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let auth = |key: &str| {
        b.call(
            "PUT",
            "/v2/api_auth",
            None,
            Some(json!({"data": {"api_key": key}})),
        )
    };
    // api_auth.json: 64 characters.
    let r = auth("short");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"]["api_key"]["minLength"]["target"], 64);
    // A key of the right shape that no account has: bad_identifier.
    let r = auth(&"0".repeat(64));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "bad_identifier");
    let r = auth(&acme.key);
    assert_eq!(r.status, 201);
    assert_envelope(&r, r.json()["auth_token"].as_str().unwrap());
    let data = &r.json()["data"];
    assert_eq!(data["account_id"], acme.id.as_str());
    for key in [
        "account_name",
        "apps",
        "is_reseller",
        "language",
        "reseller_id",
    ] {
        assert!(data.get(key).is_some(), "{key} in {data}");
    }
}

/// Long on purpose: one user walked through users.md and user_authentication.md
/// (create, read-modify-save, patch, a refused edit, login by md5, wrong
/// logins, delete), each step using the user and token the one before it left.
#[test]
fn users_md_and_user_authentication_md_a_user_is_made_changed_and_logs_in() {
    let b = TestBox::start();
    let acme = b.tenant("Acme");
    let token = b.token(&acme);
    let users = format!("/v2/accounts/{}/users", acme.id);

    // users.md's own example: a first and a last name, nothing else.
    let r = b.call(
        "PUT",
        &users,
        Some(&token),
        Some(json!({"data": {"first_name": "User", "last_name": "Three"}})),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let three = r.json()["data"].clone();
    assert_eq!(three["first_name"], "User");
    assert!(three.get("email").is_none(), "{three}");

    // A user with a login, as Monster UI makes one.
    let r = b.call(
        "PUT",
        &users,
        Some(&token),
        Some(json!({"data": {
            "first_name": "Frank", "last_name": "Fax", "username": "Frank@Acme.example",
            "password": "s3cret", "priv_level": "admin", "timezone": "America/New_York",
            "ui_metadata": {"origin": "accounts"}
        }})),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let frank = r.json()["data"].clone();
    let id = frank["id"].as_str().unwrap().to_owned();
    assert_eq!(frank["username"], "frank@acme.example");
    assert_eq!(
        frank["email"], "frank@acme.example",
        "a username that is an address is the email"
    );
    assert!(
        frank.get("password").is_none() && frank.get("credentials").is_none(),
        "{frank}"
    );

    // GET -> modify -> POST, as Monster UI saves a user (users.md's POST
    // body keys included); the password stays.
    let r = b.call("GET", &format!("{users}/{id}"), Some(&token), None);
    let mut doc = r.json()["data"].clone();
    doc["last_name"] = json!("Faxwell");
    doc["vm_to_email_enabled"] = json!(true);
    doc["hotdesk"] =
        json!({"enabled": false, "keep_logged_in_elsewhere": false, "require_pin": false});
    let r = b.call(
        "POST",
        &format!("{users}/{id}"),
        Some(&token),
        Some(json!({ "data": doc })),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["last_name"], "Faxwell");
    assert_eq!(r.json()["data"]["hotdesk"]["require_pin"], false);
    // users.md's PATCH example.
    let r = b.call(
        "PATCH",
        &format!("{users}/{id}"),
        Some(&token),
        Some(json!({"data": {"enabled": false}})),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["enabled"], false);
    assert_eq!(r.json()["data"]["vm_to_email_enabled"], true);

    // Every bad field at once.
    let r = b.call(
        "PUT",
        &users,
        Some(&token),
        Some(json!({"data": {"first_name": "", "priv_level": "root", "email": "nope", "timezone": "Mars/Base"}})),
    );
    assert_eq!(r.status, 400);
    let errors = &r.json()["data"];
    assert!(errors["priv_level"]["enum"].is_object(), "{errors}");
    assert!(
        errors["first_name"]["maxLength"].is_object()
            || errors["first_name"]["minLength"].is_object(),
        "{errors}"
    );
    assert!(errors["timezone"]["format"].is_object(), "{errors}");

    // user_authentication.md: md5("username:password") and the account.
    // md5 of "username:password", computed apart (Python's hashlib), as a
    // client computes it.
    let md5 = |text: &str| match text {
        "frank@acme.example:s3cret" => "7657518653476592e0c7583b345f6bb1",
        "frank@acme.example:wrong" => "125ce735b14870605c772243ccaddf0b",
        other => panic!("no md5 for {other}"),
    };
    let login = |data: Value| b.call("PUT", "/v2/user_auth", None, Some(json!({ "data": data })));
    let credentials = md5("frank@acme.example:s3cret");
    let r = login(json!({"credentials": credentials, "account_name": "Acme"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let user_token = r.json()["auth_token"].as_str().unwrap().to_owned();
    assert_envelope(&r, &user_token);
    assert_eq!(r.json()["data"]["owner_id"], id.as_str());
    assert_eq!(r.json()["data"]["account_id"], acme.id.as_str());
    let r = b.call("GET", &format!("{users}/{id}"), Some(&user_token), None);
    assert_eq!(r.status, 200);
    // Without an account, the login is found on the box.
    assert_eq!(login(json!({"credentials": credentials})).status, 201);
    // A wrong password, or another account's name: invalid_credentials.
    for data in [
        json!({"credentials": md5("frank@acme.example:wrong"), "account_name": "Acme"}),
        json!({"credentials": credentials, "account_name": "Other"}),
    ] {
        let r = login(data);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["message"], "invalid_credentials");
    }
    // A deleted user's token ends at once.
    let r = b.call("DELETE", &format!("{users}/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["_read_only"]["deleted"], true);
    let r = b.call("GET", &users, Some(&user_token), None);
    assert_eq!(r.status, 401);
}

#[test]
fn accounts_md_child_accounts_are_made_changed_listed_and_removed() {
    let b = TestBox::start();
    let root = admin(&b);
    let token = b.token(&root);

    // accounts.md "Create a new child account": PUT /v2/accounts/{parent}.
    let r = b.call(
        "PUT",
        &format!("/v2/accounts/{}", root.id),
        Some(&token),
        Some(json!({"data": {"name": "child account"}})),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let child = r.json()["data"].clone();
    let id = child["id"].as_str().unwrap().to_owned();
    assert_eq!(child["parent_id"], root.id.as_str());

    // PATCH with accounts.md's example, then POST the document back.
    let r = b.call(
        "PATCH",
        &format!("/v2/accounts/{id}"),
        Some(&token),
        Some(json!({"data": {"some_key": "some_value", "timezone": "America/Los_Angeles"}})),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["some_key"], "some_value");
    let mut doc = r.json()["data"].clone();
    doc["language"] = json!("en-us");
    doc["name"] = json!("child account renamed");
    let r = b.call(
        "POST",
        &format!("/v2/accounts/{id}"),
        Some(&token),
        Some(json!({ "data": doc })),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["data"]["name"], "child account renamed");
    assert_eq!(r.json()["data"]["timezone"], "America/Los_Angeles");
    assert_eq!(r.json()["data"]["some_key"], "some_value");

    // GET .../children, and .../api_key.
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{}/children", root.id),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["id"], id.as_str());
    let r = b.call(
        "PUT",
        &format!("/v2/accounts/{id}/api_key"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let key = r.json()["data"]["api_key"].as_str().unwrap().to_owned();
    let r = b.call(
        "PUT",
        "/v2/api_auth",
        None,
        Some(json!({"data": {"api_key": key}})),
    );
    assert_eq!(
        r.json()["data"]["account_id"],
        id.as_str(),
        "{} {:?}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let r = b.call(
        "GET",
        &format!("/v2/accounts/{id}/api_key"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["api_keys"].as_array().unwrap().len(), 1);

    let r = b.call("DELETE", &format!("/v2/accounts/{id}"), Some(&token), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["_read_only"]["deleted"], true);
}

/// Python 3 with kazoo-sdk (PyPI), the Kazoo client library the next test
/// drives: installed with pip when missing. Without Python and pip the
/// test fails, saying so; it never passes without running the client.
fn kazoo_sdk_python() -> String {
    let python = std::env::var("FAXBOX_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let importable = || {
        std::process::Command::new(&python)
            .args([
                "-c",
                "import kazoo.client, kazoo.request_objects; kazoo.client.Client",
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable() {
        let out = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "kazoo-sdk==0.2.4"])
            .output()
            .unwrap_or_else(|e| {
                panic!("the kazoo-sdk test needs {python} (Python 3 with pip): {e}")
            });
        assert!(
            out.status.success(),
            "pip could not install kazoo-sdk: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(importable(), "kazoo-sdk was installed but does not import");
    }
    python
}

/// kazoo-sdk, a real Kazoo client, against `faxbox serve`: API-key and
/// username/password login, accounts, users and a faxbox, each call
/// behaving as against Kazoo (tests/kazoo-sdk/check.py lists them).
#[test]
fn kazoo_sdk_logs_in_and_manages_accounts_users_and_a_faxbox_on_a_running_box() {
    let python = kazoo_sdk_python();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = super::serve(dir.path());
    let key = std::fs::read_to_string(dir.path().join("data").join("api.key")).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kazoo-sdk/check.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(format!("{}/v2", url.trim_end_matches('/')))
        .arg(key.trim())
        .output()
        .unwrap();
    assert!(
        crate::harness::stop_with_sigterm(&mut child).success(),
        "serve stops cleanly"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("calls behaved as against Kazoo"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

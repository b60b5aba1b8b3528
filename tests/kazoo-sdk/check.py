"""Drives a running Faxbox with kazoo-sdk, a Kazoo client from PyPI.

Usage: check.py BASE_URL API_KEY   (BASE_URL ends in /v2)

Every call goes through kazoo-sdk's own request machinery (its generated
client methods, or its KazooRequest for resources it has no method for),
so each reply is read the way the library reads Kazoo's: the envelope's
`status`, `data`, `error` and `auth_token`. Prints one line per call and
exits non-zero at the first call that does not behave as against Kazoo.
"""

import sys

from kazoo.client import Client
from kazoo.exceptions import KazooApiBadDataError, KazooApiError
from kazoo.request_objects import KazooRequest

base_url, api_key = sys.argv[1], sys.argv[2]
calls = 0


def check(what, ok, detail=""):
    global calls
    calls += 1
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else ": " + str(detail)))
    if not ok:
        sys.exit(1)


# api_auth: an API key for a token.
admin = Client(api_key=api_key, base_url=base_url)
token = admin.authenticate()
check("api-key login", len(token) > 0 and admin.auth_data["status"] == "success", admin.auth_data)
admin_id = admin.auth_data["data"]["account_id"]

reply = admin.get_account(admin_id)
check("get_account", reply["data"]["id"] == admin_id, reply)

# Accounts: a child of the admin, changed, listed among its children.
reply = admin.create_account({"name": "Branch Office", "timezone": "America/Chicago"})
branch = reply["data"]
check("create_account", branch["name"] == "Branch Office" and branch["timezone"] == "America/Chicago", reply)
changed = dict(branch, language="fr-fr", ui_metadata={"ui": "kazoo-sdk"})
reply = admin.update_account(branch["id"], changed)
check("update_account keeps the client's keys",
      reply["data"]["language"] == "fr-fr" and reply["data"]["ui_metadata"] == {"ui": "kazoo-sdk"}, reply)
reply = admin.get_account_children(admin_id)
check("get_account_children", branch["id"] in [a["id"] for a in reply["data"]], reply)
reply = admin.get_accounts()
check("get_accounts", branch["id"] in [a["id"] for a in reply["data"]], reply)

# Users: created with a login, read, changed the way clients do (GET,
# modify, POST back), listed.
user = {
    "first_name": "Frank",
    "last_name": "Fax",
    "username": "frank",
    "password": "s3cret-fax",
    "email": "frank@branch.example.com",
    "priv_level": "admin",
    "timezone": "America/Chicago",
}
reply = admin.create_user(branch["id"], user)
frank = reply["data"]
check("create_user", frank["username"] == "frank" and "password" not in frank, reply)
reply = admin.get_user(branch["id"], frank["id"])
check("get_user", reply["data"]["first_name"] == "Frank", reply)
doc = reply["data"]
doc["last_name"] = "Faxwell"
doc["vm_to_email_enabled"] = True
reply = admin.update_user(branch["id"], frank["id"], doc)
check("update_user", reply["data"]["last_name"] == "Faxwell" and reply["data"]["vm_to_email_enabled"] is True, reply)
reply = admin.get_users(branch["id"])
check("get_users", [u["id"] for u in reply["data"]] == [frank["id"]], reply)

try:
    admin.create_user(branch["id"], {"first_name": "No", "last_name": "Mail", "email": "not-an-address"})
    check("a bad user is refused", False, "accepted")
except KazooApiBadDataError as e:
    check("a bad user is refused with its field", "email" in e.field_errors, e.field_errors)

# user_auth: kazoo-sdk's username/password mode (md5 of "username:password").
frank_client = Client(username="frank", password="s3cret-fax", account_name="Branch Office", base_url=base_url)
frank_token = frank_client.authenticate()
check("username/password login", frank_client.auth_data["data"]["account_id"] == branch["id"]
      and frank_client.auth_data["data"]["owner_id"] == frank["id"], frank_client.auth_data)
reply = frank_client.get_user(branch["id"], frank["id"])
check("the user's token reads its account", reply["data"]["username"] == "frank", reply)
try:
    Client(username="frank", password="wrong", account_name="Branch Office", base_url=base_url).authenticate()
    check("a wrong password is refused", False, "accepted")
except KazooApiError as e:
    check("a wrong password is refused", True)

# A faxbox, through kazoo-sdk's request machinery (it has no faxbox method).
create = KazooRequest("/accounts/{account_id}/faxboxes", method="put")
reply = frank_client._execute_request(create, account_id=branch["id"], data={
    "name": "Branch fax", "caller_id": "+15550003333", "retries": "3",
    "owner_id": frank["id"], "ui_metadata": {"origin": "kazoo-sdk"}})
faxbox = reply["data"]
check("create faxbox", faxbox["retries"] == 3 and faxbox["owner_id"] == frank["id"]
      and faxbox["smtp_email_address"], reply)
listing = KazooRequest("/accounts/{account_id}/faxboxes")
reply = frank_client._execute_request(listing, account_id=branch["id"])
check("list faxboxes", [f["id"] for f in reply["data"]] == [faxbox["id"]], reply)
one = KazooRequest("/accounts/{account_id}/faxboxes/{faxbox_id}")
reply = frank_client._execute_request(one, account_id=branch["id"], faxbox_id=faxbox["id"])
check("get faxbox", reply["data"]["ui_metadata"] == {"origin": "kazoo-sdk"}, reply)
remove = KazooRequest("/accounts/{account_id}/faxboxes/{faxbox_id}", method="delete")
reply = frank_client._execute_request(remove, account_id=branch["id"], faxbox_id=faxbox["id"])
check("delete faxbox", reply["status"] == "success", reply)

reply = admin.delete_user(branch["id"], frank["id"])
check("delete_user", reply["status"] == "success", reply)
reply = admin.delete_account(branch["id"])
check("delete_account", reply["status"] == "success", reply)

print("kazoo-sdk: %d calls behaved as against Kazoo" % calls)

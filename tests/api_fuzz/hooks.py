"""Schemathesis hooks of tokenledger's API fuzzing (`tests/tests/api_fuzz.rs`).

Some rules of the API relate a request's parameters to each other, to the log's state or to
the clock (`index < size`, `start < end`, `expires_at` in the future, `reason` in the query or
the body). The OpenAPI document states them in words, as no schema can; these hooks make the
schema-valid requests schemathesis generates keep them too, so that such a request is refused
only for a rule the document does not state, which is the failure the run looks for.
Schema-violating (negative) requests are sent as generated.
"""

import time
from urllib.parse import unquote

import schemathesis

# The issuer an xrootd export is asked for (`issuer=`, required there).
ISSUER = "https://atlas-auth.example/"

# The rule of each operation, by (method, path template): see `rule`.
RULES = {}


def rule(*operations):
    """Registers the decorated function as the rule of `operations`, (method, path) pairs."""

    def register(function):
        for operation in operations:
            RULES[operation] = function
        return function

    return register


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integers(query, *names):
    """The integers of query parameters `names` (generated as numbers or as decimal strings),
    or None unless all of them are."""
    values = []
    for name in names:
        value = query.get(name)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        values.append(value)
    return values


def _set_integers(query, **values):
    """Sets query parameters to integers, spelled as decimal strings."""
    for name, value in values.items():
        query[name] = str(value)


def _body(case):
    return case.body if isinstance(case.body, dict) else None


@rule(("GET", "/v1/log/proof/inclusion"))
def inclusion_proof(case):
    """`index < size`."""
    query = case.query or {}
    numbers = _integers(query, "index", "size")
    if numbers is not None and 0 < numbers[1] <= numbers[0]:
        _set_integers(query, index=numbers[0] % numbers[1])


@rule(("GET", "/v1/log/proof/consistency"))
def consistency_proof(case):
    """`from <= to`."""
    query = case.query or {}
    numbers = _integers(query, "from", "to")
    if numbers is not None and numbers[0] > numbers[1]:
        _set_integers(query, **{"from": numbers[1], "to": numbers[0]})


@rule(("GET", "/v1/log/entries"))
def log_entries(case):
    """`start < end`."""
    query = case.query or {}
    numbers = _integers(query, "start", "end")
    if numbers is not None and 0 < numbers[1] <= numbers[0]:
        _set_integers(query, start=numbers[1] - 1)


@rule(("GET", "/v1/vos/{vo}/tokens"))
def search_tokens(case):
    """At least one of `client_id` and `scope`."""
    query = case.query if case.query is not None else {}
    if "client_id" not in query and "scope" not in query:
        query["client_id"] = "api-fuzz-client"
        case.query = query


@rule(("GET", "/v1/sites/{site}/blocklist"))
def site_blocklist(case):
    """`op_alias` for `dcache` only; `issuer` (required) and `xrootd_name` for `xrootd` only;
    `wait` (the long poll) for the signed blocklist only, not with an export."""
    query = case.query or {}
    form = query.get("format")
    if form not in (None, "json"):
        query.pop("wait", None)
    if form != "dcache":
        query.pop("op_alias", None)
    if form != "xrootd":
        query.pop("issuer", None)
        query.pop("xrootd_name", None)
    elif "issuer" not in query:
        query["issuer"] = ISSUER


@rule(
    ("DELETE", "/v1/sites/{site}/suspensions/{id}"),
    ("DELETE", "/v1/vos/{vo}/suspensions/{id}"),
)
def lift(case):
    """A reason in the query or in the body, not both."""
    query = case.query if case.query is not None else {}
    if _body(case) is not None:
        query.pop("reason", None)
    elif "reason" not in query:
        query["reason"] = "API-FUZZ-1"
        case.query = query


@rule(("POST", "/v1/sites/{site}/sightings"))
def sighting(case):
    """`seen_at` not in the future."""
    body = _body(case)
    now = int(time.time())
    if body is not None and _is_number(body.get("seen_at")) and body["seen_at"] > now:
        body["seen_at"] = int(body["seen_at"]) % now


@rule(
    ("POST", "/v1/sites/{site}/suspensions"),
    ("POST", "/v1/vos/{vo}/suspensions"),
    ("POST", "/v1/sites/{site}/suspension-requests"),
    ("POST", "/v1/vos/{vo}/suspension-requests/{id}/accept"),
)
def suspension(case):
    """`expires_at` in the future; `issued_before` not in the future, and not with `target:
    token`; a `target` that fits the subject (`client` with `client` only, `token` with
    `jti`), `client` only as the one subject, and `iss` with it."""
    body = _body(case)
    now = int(time.time())
    if body is not None:
        person = body.get("pseudonym") is not None or body.get("person") is not None
        if body.get("client") is not None and (person or body.get("jti") is not None):
            body.pop("client")
        client = body.get("client") is not None
        target = body.get("target")
        if (target == "client") != client or (target == "token" and body.get("jti") is None):
            body.pop("target", None)
    if body is not None and _is_number(body.get("expires_at")) and body["expires_at"] <= now + 60:
        body["expires_at"] = now + 3600 + abs(int(body["expires_at"])) % 86400
    if body is not None and _is_number(body.get("issued_before")) and body["issued_before"] > now:
        body["issued_before"] = int(body["issued_before"]) % now
    if body is not None and body.get("target") == "token":
        body.pop("issued_before", None)
    if body is not None and body.get("client") is not None and body.get("iss") is None:
        body["iss"] = ISSUER


@rule(("POST", "/v1/vos/{vo}/persons/{person}/merge"))
def merge(case):
    """`other` is not the person merged into."""
    body = _body(case)
    person = unquote((case.path_parameters or {}).get("person", ""))
    if body is not None and body.get("other") == person:
        body["other"] = f"{person}-other"


@rule(("POST", "/v1/vos/{vo}/persons/{person}/identities"))
def link(case):
    """An X.509 DN (`iss: x509`) holds no `$`, `` ` ``, `\\`, `'` or `"`."""
    body = _body(case)
    if body is not None and body.get("iss") == "x509" and isinstance(body.get("sub"), str):
        body["sub"] = "".join(c for c in body["sub"] if c not in "$`\\'\"") or "/CN=api-fuzz"


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    rule = RULES.get((case.method.upper(), case.operation.path))
    if rule is not None:
        rule(case)
    return case

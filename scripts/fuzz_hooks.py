"""Schemathesis hooks of scripts/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

The document describes phone numbers as strings in "any accepted form", so almost every phone
the fuzzer draws is refused with 422 and the rest of the body never reaches the database. Half
of the generated bodies with a phone (`phone`, and each `recipients[].to` of a send) get a valid
E.164 number instead, so contacts, leads, flow triggers and sends are created with the other
fields as drawn.
"""

import schemathesis
from hypothesis import strategies as st

E164 = st.from_regex(r"\A\+[1-9][0-9]{7,14}\Z")


def _with_valid_phones(body, phones):
    body = dict(body)
    phones = iter(phones)
    if isinstance(body.get("phone"), str):
        body["phone"] = next(phones)
    if isinstance(body.get("recipients"), list):
        body["recipients"] = [
            {**r, "to": next(phones)} if isinstance(r, dict) and isinstance(r.get("to"), str) else r
            for r in body["recipients"]
        ]
    return body


@schemathesis.hook
def flatmap_body(context, body):
    if not isinstance(body, dict):
        return st.just(body)
    count = int(isinstance(body.get("phone"), str))
    if isinstance(body.get("recipients"), list):
        count += sum(1 for r in body["recipients"] if isinstance(r, dict) and isinstance(r.get("to"), str))
    if count == 0:
        return st.just(body)
    valid = st.lists(E164, min_size=count, max_size=count).map(lambda p: _with_valid_phones(body, p))
    return st.one_of(st.just(body), valid)

"""No error text holds a password or token, whatever the URL or client repr looks like."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgdel import AdapterNotFound, DeletionFailed, NotDeletable
from msgdel.errors import redact

# Characters a password may hold raw in a URL's user-info (what users paste), and the
# letters of a host; a secret is long enough to be told apart from the rest of the text.
secrets = st.text(alphabet=string.ascii_letters + string.digits + "@:%!$&'()*+,;=-._~", min_size=8)
hosts = st.from_regex(r"[a-z][a-z0-9-]{2,20}(\.[a-z]{2,5})?", fullmatch=True)
schemes = st.sampled_from(["redis", "rediss", "amqp", "amqps", "kafka", "nats", "tls", "mqtt"])


@given(
    scheme=schemes, user=st.from_regex(r"[a-z]{0,8}", fullmatch=True), secret=secrets, host=hosts
)
def test_a_url_password_never_survives_even_with_raw_at_signs_and_colons(
    scheme: str, user: str, secret: str, host: str
) -> None:
    url = f"{scheme}://{user}:{secret}@{host}:1234/0"
    text = redact(f"could not reach {url} (timed out)")
    assert secret not in text
    assert f"{scheme}://***@{host}:1234/0" in text


@given(scheme=schemes, token=secrets.filter(lambda t: "@" not in t), host=hosts)
def test_a_token_as_user_info_never_survives(scheme: str, token: str, host: str) -> None:
    assert token not in redact(f"{scheme}://{token}@{host}:4222")


@given(
    key=st.sampled_from(["password", "sasl_password", "token", "auth_token", "secret", "api_key"]),
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=8),
    quote=st.sampled_from(["", "'", '"']),
    separator=st.sampled_from(["=", ": ", " = "]),
)
def test_a_secret_in_a_query_string_or_a_client_repr_never_survives(
    key: str, secret: str, quote: str, separator: str
) -> None:
    if not quote and separator != "=":
        separator = "="  # bare values are recognised after '=' only (``key: value`` is prose)
    text = redact(f"Client(host='h', {key}{separator}{quote}{secret}{quote}, port=1)")
    assert secret not in text
    assert "host='h'" in text
    assert "port=1" in text


@given(st.text())
def test_redacting_is_idempotent_and_never_fails(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "redis://localhost:6379/0",
        "Authentication failed: invalid username-password pair",
        "write to orders@example.org",
        "stream orders-1: entry 1-0",
    ],
)
def test_text_without_secrets_is_left_as_it_is(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("error", [NotDeletable, DeletionFailed])
def test_every_msgdel_error_redacts_its_text(error: type[Exception]) -> None:
    url = "amqp://guest:p@ssw0rd-XYZ@rabbit:5672/"
    raised = (
        error(f"lost {url}", retryable=True) if error is DeletionFailed else error(f"lost {url}")
    )
    assert "ssw0rd" not in str(raised)
    assert "amqp://***@rabbit:5672/" in str(raised)


def test_a_raw_client_message_is_told_to_pass_the_faststream_message() -> None:
    raw = type("Msg", (), {"__module__": "nats.aio.msg"})
    error = AdapterNotFound(raw, ["faststream.nats.message.NatsMessage"])
    assert "the broker client's own message, not FastStream's" in str(error)
    assert "Register one" not in str(error)

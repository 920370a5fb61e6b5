import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from csss_core.keys import SAS_ALPHABET, KeyAgreement, KeyExchangeError, read_key_file


def _run(a: KeyAgreement, b: KeyAgreement) -> None:
    """Initiator a, responder b, messages passed unchanged."""
    m1 = a.start()
    assert m1 is not None and "commit" in m1 and b.start() is None
    m2 = b.receive(m1)
    assert m2 is not None
    m3 = a.receive(m2)
    assert m3 is not None
    assert b.receive(m3) is None


def test_both_parties_derive_the_same_sas_and_crossed_direction_keys():
    a, b = KeyAgreement(True), KeyAgreement(False)
    _run(a, b)
    assert a.keys is not None and b.keys is not None
    assert a.keys.sas == b.keys.sas and len(a.keys.sas) == 4 and set(a.keys.sas) <= set(SAS_ALPHABET)
    assert a.keys.send == b.keys.receive and a.keys.receive == b.keys.send
    assert a.keys.send != a.keys.receive
    assert a.keys.send.hex() not in repr(a.keys)


def test_new_call_new_keys():
    a1, b1, a2, b2 = KeyAgreement(True), KeyAgreement(False), KeyAgreement(True), KeyAgreement(False)
    _run(a1, b1)
    _run(a2, b2)
    assert a1.keys is not None and a2.keys is not None
    assert a1.keys.send != a2.keys.send


def test_a_relay_that_swaps_keys_is_caught_by_the_sas():
    """Man in the middle: runs one exchange with each party; SAS strings differ (1 in 2**20 chance)."""
    alice, bob = KeyAgreement(True), KeyAgreement(False)
    m_to_bob, m_to_alice = KeyAgreement(True), KeyAgreement(False)  # the relay's two sides
    _run(alice, m_to_alice)
    _run(m_to_bob, bob)
    assert alice.keys is not None and bob.keys is not None
    assert alice.keys.sas != bob.keys.sas
    assert alice.keys.send != bob.keys.receive


def test_a_revealed_key_must_match_the_commitment():
    a, b, other = KeyAgreement(True), KeyAgreement(False), KeyAgreement(True)
    m1 = a.start()
    assert m1 is not None
    m2 = b.receive(m1)
    assert m2 is not None
    a.receive(m2)
    with pytest.raises(KeyExchangeError, match="commitment"):
        b.receive({"public_key": other.public.hex()})


@pytest.mark.parametrize("msg", [{"public_key": "ab"}, {"public_key": "zz" * 32}, {}, {"commit": "00" * 32,
                                                                                         "public_key": "00" * 32}])
def test_malformed_or_out_of_order_messages_are_refused(msg):
    with pytest.raises(KeyExchangeError):
        KeyAgreement(True).receive(msg)
    with pytest.raises(KeyExchangeError):
        KeyAgreement(False).receive(msg)


def test_low_order_public_key_is_refused():
    a = KeyAgreement(True)
    a.start()
    with pytest.raises(KeyExchangeError, match="unusable"):
        a.receive({"public_key": "00" * 32})


def test_a_preshared_key_is_mixed_into_fresh_per_call_keys():
    psk = bytes(range(32))
    calls = []
    for _ in range(2):
        a, b = KeyAgreement(True, psk=psk), KeyAgreement(False, psk=psk)
        _run(a, b)
        assert a.keys.send == b.keys.receive and a.keys.receive == b.keys.send and a.keys.sas == b.keys.sas
        calls.append(a.keys)
    assert calls[0].send != calls[1].send  # same file, new call, new keys: no replay across calls
    # the same exchange without the file, or with another file, gives other keys
    priv_a, priv_b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    keys = []
    for p in (psk, None, bytes(32)):
        a, b = KeyAgreement(True, priv_a, psk=p), KeyAgreement(False, priv_b, psk=p)
        _run(a, b)
        keys.append(a.keys.send)
    assert len(set(keys)) == 3
    # a relay that swaps the public keys but lacks the file shares no key with either side
    a, b = KeyAgreement(True, psk=psk), KeyAgreement(False, psk=psk)
    m_a, m_b = KeyAgreement(False, psk=bytes(32)), KeyAgreement(True, psk=bytes(32))  # relay's halves
    m1 = a.start()
    m_a.receive(m1)  # relay plays responder towards a
    m_b_first = m_b.start()
    reply_to_relay = b.receive(m_b_first)
    m3 = a.receive({"public_key": m_a.public.hex()})
    m_a.receive(m3)
    m_b.receive(reply_to_relay)
    b.receive({"public_key": m_b.public.hex()})
    assert a.keys.send not in (m_a.keys.receive, m_a.keys.send)
    assert b.keys.send not in (m_b.keys.receive, m_b.keys.send)
    with pytest.raises(KeyExchangeError):
        KeyAgreement(True, psk=b"short")


def test_key_files(tmp_path):
    p = tmp_path / "k"
    p.write_text("ab" * 32 + "\n")
    assert read_key_file(p) == bytes.fromhex("ab" * 32)
    p.write_text("not hex")
    with pytest.raises(ValueError, match="not a key file"):
        read_key_file(p)
    with pytest.raises(ValueError, match="no such key file"):
        read_key_file(tmp_path / "missing")

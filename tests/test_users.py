"""Coders who sign in (`coder.store.users`, `coder users`): hashed passwords, one-time
passwords, sessions that end, roles; over real study files."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import pytest

from coder.errors import CoderError, SignInRefused, UnknownReference
from coder.store import users
from coder.study import Study

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import dump, run  # noqa: E402
from web_helpers import make_study  # noqa: E402


@pytest.fixture
def study(tmp_path):
    path = make_study(tmp_path / "s")
    with Study(path) as s:
        yield s


def test_a_password_is_stored_only_as_a_salted_scrypt_hash(study):
    user, password = users.add_user(study, "alice")
    row = study.db.one("SELECT password_hash, one_time FROM users")
    assert password not in row["password_hash"] and row["password_hash"].startswith("scrypt$")
    assert row["one_time"] == 1 and user.one_time and user.role == "coder"
    assert users.verify_password(password, row["password_hash"])
    assert not users.verify_password(password + "x", row["password_hash"])
    # the same password twice gives two different hashes (a salt each)
    assert users.hash_password("same password") != users.hash_password("same password")
    assert not users.verify_password("anything", "not a hash")


def test_sign_in_gives_a_session_whose_cookie_is_not_stored(study):
    _, password = users.add_user(study, "alice", role="lead")
    token = users.sign_in(study, "Alice", password, client="127.0.0.1")  # spelling resolved
    assert study.db.one("SELECT COUNT(*) FROM sessions WHERE token_hash=?", (token,))[0] == 0
    signed = users.session(study.db, token)
    assert signed.name == "alice" and signed.lead and signed.one_time
    assert users.session(study.db, token + "x") is None
    assert users.session(study.db, None) is None
    users.sign_out(study, token)
    assert users.session(study.db, token) is None


def test_wrong_password_and_unknown_name_are_refused_alike(study):
    _, password = users.add_user(study, "alice")
    with pytest.raises(SignInRefused) as wrong:
        users.sign_in(study, "alice", "not the password")
    with pytest.raises(SignInRefused) as unknown:
        users.sign_in(study, "mallory", password)
    assert wrong.value.detail == unknown.value.detail == "wrong name or password"
    assert study.db.one("SELECT COUNT(*) FROM sessions")[0] == 0


def test_a_session_expires(study):
    _, password = users.add_user(study, "alice")
    token = users.sign_in(study, "alice", password, hours=1 / 3600)  # one second
    assert users.session(study.db, token) is not None
    time.sleep(2.1)
    assert users.session(study.db, token) is None


def test_changing_the_one_time_password_ends_the_other_sessions(study):
    _, password = users.add_user(study, "alice")
    first = users.sign_in(study, "alice", password)
    second = users.sign_in(study, "alice", password)
    signed = users.session(study.db, second)
    with pytest.raises(SignInRefused, match="at least 10"):
        users.change_password(study, signed, password, "short")
    with pytest.raises(SignInRefused, match="current password is wrong"):
        users.change_password(study, signed, "wrong", "a long new password")
    users.change_password(study, signed, password, "a long new password")
    assert users.session(study.db, first) is None
    assert users.session(study.db, second).one_time is False
    with pytest.raises(SignInRefused):
        users.sign_in(study, "alice", password)      # the one-time password is spent
    assert users.sign_in(study, "alice", "a long new password")


def test_removing_a_user_ends_their_sessions_and_keeps_their_decisions(study):
    _, password = users.add_user(study, "bob")
    token = users.sign_in(study, "bob", password)
    sid = int(study.segments(include_interviewer=False)["segment_id"].iloc[0])
    code = study.codebook().leaves()[0].id
    from coder import review
    review.decide(study, "bob", sid, code, "confirmed")
    users.remove_user(study, "bob")
    assert users.session(study.db, token) is None
    assert not users.any_users(study.db)
    assert len(study.codings(coder="bob")) == 1
    with pytest.raises(UnknownReference, match="cannot sign in"):
        users.reset_password(study, "bob")


def test_roles_adding_twice_and_consensus_coders(study):
    users.add_user(study, "alice")
    with pytest.raises(CoderError, match="can already sign in"):
        users.add_user(study, "ALICE")
    with pytest.raises(CoderError, match="unknown role"):
        users.add_user(study, "carol", role="admin")
    assert users.set_role(study, "alice", "lead").role == "lead"
    with study.db.transaction() as conn:
        conn.execute("INSERT INTO coders (name, kind, created_at) VALUES ('consensus', "
                     "'consensus', '2026-01-01T00:00:00Z')")
    with pytest.raises(CoderError, match="consensus coder"):
        users.add_user(study, "consensus")
    with pytest.raises(sqlite3.IntegrityError):   # the schema refuses a role it does not know
        with study.db.transaction() as conn:
            conn.execute("UPDATE users SET role='owner'")


def test_reset_prints_a_new_one_time_password(study):
    _, first = users.add_user(study, "alice")
    token = users.sign_in(study, "alice", first)
    again = users.reset_password(study, "alice")
    assert again != first and users.session(study.db, token) is None
    with pytest.raises(SignInRefused):
        users.sign_in(study, "alice", first)
    assert users.session(study.db, users.sign_in(study, "alice", again)).one_time


def test_others_visible_is_off_until_the_lead_allows_it(study):
    assert users.others_visible(study.db) is False
    users.set_others_visible(study, True)
    assert users.others_visible(study.db) is True


# -- CLI -----------------------------------------------------------------------------------------
def test_users_cli(tmp_path):
    path = make_study(tmp_path / "s")
    r = run("users", "add", path, "alice", "--role", "lead", "--url", "https://10.0.0.5:8765")
    assert r.exit_code == 0, r.output
    assert "sign in at https://10.0.0.5:8765/signin?name=alice" in r.output
    password = r.output.split("one-time password: ")[1].split()[0]
    with Study(path) as s:
        assert users.session(s.db, users.sign_in(s, "alice", password)).lead
    assert run("users", "add", path, "bob").exit_code == 0
    r = run("users", "list", path)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[1].split()[:4] == ["alice", "lead", "one-time", "1"]
    assert lines[2].split()[:4] == ["bob", "coder", "one-time", "0"]
    assert "may not see each other's decisions" in r.output
    assert run("users", "others", path, "on").exit_code == 0
    assert "may see each other's decisions" in run("users", "list", path).output
    assert run("users", "role", path, "bob", "lead").output.strip() == "bob is now a lead."
    r = run("users", "reset", path, "bob")
    assert r.exit_code == 0 and "New one-time password for bob: " in r.output
    r = run("users", "remove", path, "bob")
    assert r.exit_code == 0 and "every decision they made stays" in r.output


def test_users_cli_bad_input_is_a_clear_error_and_writes_nothing(tmp_path):
    path = make_study(tmp_path / "s")
    run("users", "add", path, "alice")
    before = dump(path)
    r = run("users", "add", path, "alice")
    assert r.exit_code == 1 and "Error: 'alice' can already sign in" in r.output
    r = run("users", "remove", path, "mallory")
    assert r.exit_code == 1 and "'mallory' cannot sign in" in r.output
    r = run("users", "add", path, "carol", "--role", "owner")
    assert r.exit_code == 2
    assert dump(path) == before

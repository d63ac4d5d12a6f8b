"""The configuration loader on its own: no process, no network, no data directory."""

from __future__ import annotations

import dataclasses
import os
import tomllib

import pytest

from archive import config as archive_config
from coordinator import cli as coordinator_cli
from mailnode import config

MINIMAL = {"node": {"name": "n1", "data_dir": "data"}}


def node(tmp_path, **sections) -> config.Config:
    raw = {"node": dict(MINIMAL["node"])}
    for name, keys in sections.items():
        raw.setdefault(name, {}).update(keys)
    return config.from_dict(raw, str(tmp_path / "node.toml"))


def refused(tmp_path, **sections) -> str:
    with pytest.raises(config.ConfigError) as e:
        node(tmp_path, **sections)
    return str(e.value)


def assert_refused(load, file, content: str, needle: str) -> None:
    file.write_text(content)
    with pytest.raises(config.ConfigError) as e:
        load(str(file))
    assert str(e.value).startswith(f"{file}: ") and needle in str(e.value), e.value


def test_defaults(tmp_path):
    cfg = node(tmp_path)
    assert cfg.path == str(tmp_path / "node.toml")
    assert cfg.node.name == "n1" and cfg.node.hostname == "localhost"
    assert cfg.node.domains == ("example.test",) and cfg.node.shards == 1
    assert cfg.smtp.listen == "127.0.0.1:2525" and cfg.smtp.max_message_size == 36700160
    assert cfg.smtp.timeout == 300.0 and isinstance(cfg.smtp.timeout, float)
    assert cfg.submission.listen == "" and cfg.submission.rate_per_user == 500
    assert cfg.delivery.transport == {} and cfg.delivery.dns_servers == ()
    assert cfg.delivery.starttls == "may" and cfg.delivery.delay_warning == 0.0
    assert cfg.pop3.listen == "127.0.0.1:1110" and cfg.http.listen == "127.0.0.1:8080"
    assert cfg.grpc.listen == "127.0.0.1:7070" and cfg.grpc.advertise == ""
    assert cfg.cluster.zookeeper == "" and cfg.cluster.prefer == "any"
    assert cfg.frontend.hold_timeout == 30.0 and cfg.hooks.timeout == 10.0
    assert cfg.archive.address == "" and cfg.archive.remove_archived is True
    assert cfg.tls.cert == "" and cfg.journal.segment_size == 64 << 20
    assert cfg.store.checkpoint_interval == 5.0
    # The [replication] section is the shard's typed policy plus two node-level keys.
    assert isinstance(cfg.replication, config.ReplicationPolicy)
    policy = config.ReplicationPolicy()
    assert (policy.policy, policy.strict, policy.sync_timeout) == ("sync", False, 2.0)
    assert (policy.max_lag_seconds, policy.max_lag_bytes) == (5.0, 256 << 20)
    assert dataclasses.asdict(cfg.replication) == {
        **dataclasses.asdict(policy),
        "follow": "",
        "secret_file": "",
    }


def test_values_are_typed_normalised_and_frozen(tmp_path):
    cfg = node(
        tmp_path,
        node={"domains": ["Example.ORG"]},
        smtp={"timeout": 7},
        delivery={"transport": {"Example.NET": "[::1]:25"}, "dns_servers": ["127.0.0.1:53"]},
    )
    assert cfg.node.domains == ("example.org",)
    assert cfg.smtp.timeout == 7.0 and isinstance(cfg.smtp.timeout, float)
    assert dict(cfg.delivery.transport) == {"example.net": "[::1]:25"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.smtp.timeout = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.delivery.transport["x"] = "y:1"  # type: ignore[index]


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        ("smtp", "max_message_size", "big", "expected int, got str 'big'"),
        ("smtp", "max_recipients", True, "expected int, got bool True"),
        ("node", "hostname", 5, "expected str, got int 5"),
        ("delivery", "enabled", "yes", "expected true or false, got 'yes'"),
        ("smtp", "listen", "nowhere", "expected \"host:port\", got 'nowhere'"),
        ("grpc", "advertise", "h:99999", "expected \"host:port\", got 'h:99999'"),
        ("replication", "follow", "h:", "expected \"host:port\", got 'h:'"),
        ("replication", "policy", "fast", "expected one of sync, async, local, got 'fast'"),
        ("delivery", "starttls", "yes", "expected one of may, encrypt, none, got 'yes'"),
        ("cluster", "prefer", "me", "expected one of any, spare, got 'me'"),
        ("smtp", "timeout", 0, "expected a positive number, got 0.0"),
        ("node", "shards", -1, "expected a positive number, got -1"),
        ("delivery", "delay_warning", -1, "expected zero or a positive number, got -1.0"),
        ("submission", "rate_per_ip", -5, "expected zero or a positive number, got -5"),
        ("node", "domains", ["a", ""], "expected a list of non-empty strings, got ['a', '']"),
        ("node", "domains", "a", "expected a list of non-empty strings, got 'a'"),
        ("delivery", "transport", "x", "expected a table, got str 'x'"),
        ("delivery", "transport", {"x": 1}, "'x': expected a non-empty string, got 1"),
        ("delivery", "transport", {"x": "bad"}, "'x': expected \"host:port\", got 'bad'"),
    ],
)
def test_each_validator_refuses_naming_file_section_and_key(
    tmp_path, section, key, value, expected
):
    message = refused(tmp_path, **{section: {key: value}})
    assert message.startswith(f"{tmp_path / 'node.toml'}: [{section}] {key}")
    assert message.endswith(expected), message


def test_zero_is_allowed_where_declared(tmp_path):
    cfg = node(
        tmp_path,
        submission={"rate_per_user": 0, "rate_per_ip": 0},
        archive={"base_backup_interval": 0},
    )
    assert cfg.submission.rate_per_user == 0 and cfg.archive.base_backup_interval == 0.0


def test_required_unknown_and_malformed(tmp_path):
    file = tmp_path / "node.toml"
    with pytest.raises(config.ConfigError, match=r"\[node\] data_dir is required \(where"):
        config.from_dict({"node": {"name": "n"}}, str(file))
    with pytest.raises(config.ConfigError, match=r"unknown section \[nope\] \(known: node, smtp"):
        config.from_dict({**MINIMAL, "nope": {}}, str(file))
    msg = refused(tmp_path, node={"foo": 1})
    assert msg.startswith(f"{file}: [node] unknown key 'foo' (known: name, data_dir,")
    with pytest.raises(config.ConfigError, match=r"\[smtp\] must be a table"):
        config.from_dict({**MINIMAL, "smtp": 1}, str(file))


def test_rules_across_keys(tmp_path):
    assert refused(tmp_path, tls={"cert": "c.pem"}).endswith("[tls] cert and key go together")
    assert "[replication] secret_file is required in a cluster" in refused(
        tmp_path, cluster={"zookeeper": "127.0.0.1:2181"}
    )
    assert "[submission] needs [tls] cert and key" in refused(
        tmp_path, submission={"listen": "127.0.0.1:587"}
    )
    assert "[archive] tls_ca, tls_cert and tls_key go together" in refused(
        tmp_path, archive={"tls_ca": "ca.pem"}
    )


def test_relative_paths_are_relative_to_the_file_and_nothing_is_created(tmp_path):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(conf_dir))
    cfg = config.from_dict(
        {
            "node": {"name": "n", "data_dir": "data"},
            "tls": {"cert": "c.pem", "key": "/abs/k.pem"},
            "replication": {"secret_file": "secret"},
            "hooks": {"on_role_change": "hook.sh"},
            "archive": {"tls_ca": "ca", "tls_cert": "crt", "tls_key": "key"},
        },
        str(conf_dir / "node.toml"),
    )
    assert cfg.node.data_dir == str(conf_dir / "data")
    assert cfg.tls.cert == str(conf_dir / "c.pem") and cfg.tls.key == "/abs/k.pem"
    assert cfg.replication.secret_file == str(conf_dir / "secret")
    assert cfg.hooks.on_role_change == str(conf_dir / "hook.sh")
    assert cfg.archive.tls_ca == str(conf_dir / "ca") and cfg.archive.tls_key == str(
        conf_dir / "key"
    )
    assert node(tmp_path).hooks.on_role_change == ""  # empty stays empty (off)
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(conf_dir))) == before


def test_load_reads_a_file_and_names_it_on_errors(tmp_path):
    file = tmp_path / "node.toml"
    file.write_text('[node]\nname = "n"\ndata_dir = "d"\n[smtp]\nlisten = "0.0.0.0:25"\n')
    cfg = config.load(str(file))
    assert cfg.smtp.listen == "0.0.0.0:25" and cfg.node.data_dir == str(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == ["node.toml"]
    file.write_text('[node]\nname = "n"\n[smtp\n')
    with pytest.raises(config.ConfigError, match=r"node.toml: not valid TOML: .*line 3"):
        config.load(str(file))
    with pytest.raises(config.ConfigError, match=r"missing.toml: cannot read: No such file"):
        config.load(str(tmp_path / "missing.toml"))


def test_print_defaults_lists_every_key_and_reads_back_as_the_defaults(tmp_path):
    text = config.documented_defaults()
    keys = [line for line in text.splitlines() if line and not line.startswith("#")]
    expected = []
    for name, section in config.Config.sections().items():
        expected.append(f"[{name}]")
        expected += [f.name for f in dataclasses.fields(section)]
    assert [k.split(" = ")[0] for k in keys] == expected
    assert text.count("# ") >= len(expected) - len(config.Config.sections())
    assert "name = <required>" in text and 'listen = "127.0.0.1:2525"' in text
    raw = tomllib.loads(text.replace("<required>", '"x"'))
    assert config.from_dict(raw, str(tmp_path / "node.toml")) == config.from_dict(
        {"node": {"name": "x", "data_dir": "x"}}, str(tmp_path / "node.toml")
    )


def test_archive_config(tmp_path):
    file = tmp_path / "archive.toml"
    file.write_text('[archive]\nname = "a1"\ntls_ca = "ca"\ntls_cert = "c"\ntls_key = "k"\n')
    cfg = archive_config.load(str(file))
    assert cfg.name == "a1" and cfg.keep_bases == 2 and cfg.listen == "127.0.0.1:7171"
    assert cfg.data_dir == str(tmp_path / "archive-data") and cfg.tls_ca == str(tmp_path / "ca")
    assert sorted(os.listdir(tmp_path)) == ["archive.toml"]
    for content, needle in [
        ('[archive]\nlisten = "nowhere"\n', '[archive] listen: expected "host:port"'),
        ("[archive]\nkeep_bases = 0\n", "[archive] keep_bases: expected a positive number"),
        ("[archive]\nfoo = 1\n", "[archive] unknown key 'foo'"),
        ("[node]\n", "unknown section [node] (known: archive)"),
        ('[archive]\ntls_ca = "ca"\n', "[archive] tls_ca, tls_cert and tls_key go together"),
    ]:
        assert_refused(archive_config.load, file, content, needle)
    text = config.documented_defaults(archive_config.ArchiveConfig)
    assert text.startswith("[archive]\n") and 'data_dir = "archive-data"' in text


def test_coordinator_config(tmp_path, capsys):
    file = tmp_path / "coord.toml"
    file.write_text('[coordinator]\nname = "c1"\nzookeeper = "127.0.0.1:2181"\nloop_interval = 1\n')
    cfg = coordinator_cli.load(str(file))
    assert (cfg.name, cfg.zookeeper, cfg.root) == ("c1", "127.0.0.1:2181", "/mailcluster")
    assert cfg.loop_interval == 1.0 and cfg.session_timeout == 4.0 and cfg.http == ""
    for content, needle in [
        ("[coordinator]\nname = 'c1'\n", "[coordinator] zookeeper is required"),
        ("", "[coordinator] name is required"),
        ("[coordinator]\nname = 'c'\nzookeeper = 'z'\nroot = 1\n", "root: expected str"),
        ("[coordinator]\nname = 'c'\nzookeeper = 'z'\nhttp = 'x'\n", 'http: expected "host:port"'),
        ("[coordinator]\nname = 'c'\nzookeeper = 'z'\nfoo = 1\n", "unknown key 'foo'"),
    ]:
        assert_refused(coordinator_cli.load, file, content, needle)
    assert coordinator_cli.main(["--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert err == f"mailcoordinator: config error: {file}: [coordinator] unknown key 'foo'" + (
        " (known: name, zookeeper, root, session_timeout, loop_interval, http)\n"
    )
    assert coordinator_cli.main(["--print-defaults"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[coordinator]\n")
    for key in ("name = <required>", "zookeeper = <required>", "loop_interval = 0.5", "http"):
        assert key in out


def test_the_example_files_load():
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "examples")
    assert config.load(os.path.join(examples, "node.toml")).node.name
    assert archive_config.load(os.path.join(examples, "archive.toml")).keep_bases == 2
    assert coordinator_cli.load(os.path.join(examples, "coordinator.toml")).loop_interval == 0.5

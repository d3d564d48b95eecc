"""The deployment files agree with each other and with the settings the service reads."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"
SETTING_SOURCES = [
    ROOT / "bounty" / "settings.py",
    ROOT / "bounty" / "settings_production.py",
    DEPLOY / "gunicorn.conf.py",
    *sorted((ROOT / "bounty").glob("*/conf.py")),
]
# bounty.env's readers, os.environ.get, and retraining/conf.py's _fraction (which reads its name with envstr).
READERS = r"env(?:str|bool|int|choice|list|secret)|os\.environ\.get|_fraction"
READ = re.compile(rf'(?:{READERS})\(\s*"([A-Z][A-Z0-9_]+)"')
SERVICES = {"web": "bounty-web", "worker": "bounty-worker", "beat": "bounty-beat", "ledger": "bounty-ledger"}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / f"{name}.service")
    return parser


def unit_command(name: str) -> list[str]:
    """ExecStart as the process sees it: systemd's %% is a literal %, the program by its base name."""
    argv = shlex.split(unit(name)["Service"]["ExecStart"].replace("%%", "%"))
    return [Path(argv[0]).name, *argv[1:]]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_commands() -> dict[str, list[str]]:
    """Each service's `command:` from compose.yaml."""
    return {
        name: service["command"] for name, service in compose()["services"].items() if "command" in service
    }


def test_the_compose_file_is_consistent() -> None:
    """What `docker compose config` would check first, since no Docker engine runs here: every service has
    an image or a build, depends only on services that exist, and mounts only declared named volumes."""
    document = compose()
    services, declared = document["services"], set(document.get("volumes") or {})
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        dependencies = service.get("depends_on") or []
        for dependency in dependencies if isinstance(dependencies, list) else dependencies.keys():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
        if "build" in service:
            context = DEPLOY / service["build"].get("context", ".")
            dockerfile = (context / service["build"].get("dockerfile", "Dockerfile")).resolve()
            assert dockerfile.is_file(), f"{name}: no {dockerfile}"


def settings_read() -> set[str]:
    names = set()
    for path in SETTING_SOURCES:
        names |= set(READ.findall(path.read_text()))
    return names


def documented() -> set[str]:
    text = (DEPLOY / "env.example").read_text()
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def without_host(argv: list[str]) -> list[str]:
    """The ledger listens on loopback on a host and on the compose network in a container."""
    if "--host" not in argv:
        return argv
    at = argv.index("--host")
    return argv[:at] + argv[at + 2 :]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_it_runs_the_same_command_under_systemd_and_compose(service: str) -> None:
    command = without_host(unit_command(SERVICES[service]))
    compose = without_host(compose_commands()[service])
    assert command == compose, f"{service}: systemd {command} != compose {compose}"


@pytest.mark.parametrize("name", sorted(SERVICES.values()))
def test_it_gives_every_unit_the_environment_file_and_production_settings(name: str) -> None:
    service = unit(name)["Service"]
    assert service["EnvironmentFile"] == "/etc/bounty/env"
    assert service["User"] == "bounty"
    assert service["WorkingDirectory"] == "/srv/bounty"
    if name != "bounty-ledger":
        assert "DJANGO_SETTINGS_MODULE=bounty.settings_production" in service["Environment"].split()


# The settings read with envsecret: they belong in files (NAME_FILE), never in the environment file.
SECRETS = {"SECRET_KEY", "OPERATOR_KEY", "ADMIN_KEY", "ARC_API_KEY", "WOC_API_KEY", "ARC_CALLBACK_TOKEN"}


def test_it_documents_every_setting_the_service_reads() -> None:
    names = settings_read()
    missing = {n for n in names - documented() if not (n in SECRETS and f"{n}_FILE" in documented())}
    assert len(names) > 40  # the scan found the settings at all
    assert not missing, f"add these to deploy/env.example: {sorted(missing)}"


def test_it_documents_nothing_the_service_does_not_read() -> None:
    known = settings_read() | {f"{n}_FILE" for n in SECRETS}
    known |= {"DJANGO_SETTINGS_MODULE", "DJANGO_ADMIN_USER", "DJANGO_ADMIN_PASSWORD"}
    assert documented() - known == set()


def test_it_keeps_secrets_out_of_the_example_environment() -> None:
    for line in (DEPLOY / "env.example").read_text().splitlines():
        name, _, value = line.partition("=")
        if name in SECRETS:
            pytest.fail(f"{name} belongs in a file ({name}_FILE), not in the environment file")
        if name.endswith("_FILE"):
            assert value.startswith("/etc/bounty/secrets/")


def test_it_lets_nginx_accept_the_largest_upload_the_form_accepts() -> None:
    from bounty.env import envint

    max_upload = envint("MAX_UPLOAD_BYTES", 2 * 1024 * 1024)  # the default of bounty.settings
    conf = (DEPLOY / "nginx" / "bounty.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)([km]?);", conf)
    assert size is not None
    limit = int(size.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2)]
    drawing = max_upload * 4 // 3 + 64  # the form's limit on a base64 canvas drawing
    assert drawing + 64 * 1024 <= limit <= 2 * max_upload, "keep client_max_body_size in step with uploads"


def test_it_points_nginx_at_gunicorns_default_bind() -> None:
    conf = (DEPLOY / "nginx" / "bounty.conf").read_text()
    namespace: dict = {}
    exec((DEPLOY / "gunicorn.conf.py").read_text(), namespace)
    assert f"server {namespace['bind']} " in conf
    params = (DEPLOY / "nginx" / "bounty_proxy_params").read_text()
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in params
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in params  # set, never appended
    assert "$proxy_add_x_forwarded_for" not in params


def test_it_serves_static_and_media_from_the_documented_roots() -> None:
    conf = (DEPLOY / "nginx" / "bounty.conf").read_text()
    env = (DEPLOY / "env.example").read_text()
    for url, name in (("/static/", "STATIC_ROOT"), ("/media/", "MEDIA_ROOT")):
        root = re.search(rf"^{name}=(\S+)$", env, flags=re.MULTILINE)
        assert root is not None
        assert re.search(rf"location {url} {{\s+alias {re.escape(root.group(1))}/;", conf)


def test_it_starts_the_smoke_test_with_the_units_commands() -> None:
    smoke = (DEPLOY / "smoke.sh").read_text()
    for name in ("bounty-web", "bounty-worker", "bounty-beat"):
        args = unit_command(name)[1:]
        if name == "bounty-worker":
            args = args[: args.index("--hostname")]
        assert " ".join(args) in " ".join(smoke.replace("\\\n", " ").split())


LOCKS = {"dev": ROOT / "requirements" / "dev.lock", "production": ROOT / "requirements" / "production.lock"}


def locked(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, sha256 hashes) of a lock from `make lock`: every line an exact pin with hashes."""
    pins = {}
    for entry in path.read_text().replace("\\\n", " ").splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        pin = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", entry)
        assert pin is not None, f"{path.name}: not an exact pin with hashes: {entry[:80]}"
        pins[canonicalize_name(pin[1])] = (pin[2], frozenset(re.findall(r"sha256:([0-9a-f]{64})", pin[3])))
    return pins


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize(("lock", "extras"), [("dev", (None, "dev")), ("production", (None,))])
def test_the_lock_pins_each_declared_dependency(lock: str, extras: tuple[str | None, ...]) -> None:
    """A floor raised in pyproject.toml without `make lock` fails here, not in production."""
    pins = locked(LOCKS[lock])
    for extra in extras:
        for requirement in declared(extra):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement.name} is not in {lock}.lock: run make lock"
            version = pins[name][0]
            assert requirement.specifier.contains(version), f"{lock}.lock has {name} {version}: {requirement}"
    assert "pip" in pins and "setuptools" in pins  # the installer and the build backend are hashed too


def test_production_pins_the_same_files_as_dev_and_no_dev_tool() -> None:
    dev, production = locked(LOCKS["dev"]), locked(LOCKS["production"])
    assert {name: dev.get(name) for name in production} == production
    assert not {canonicalize_name(r.name) for r in declared("dev")} & set(production)


def test_every_install_goes_through_a_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^\$\(STAMP\): pyproject\.toml \$\(LOCK\)$", makefile, flags=re.MULTILINE)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/production.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation -e ." in dockerfile
    for path in LOCKS.values():
        text = path.read_text()
        assert not re.search(r"^\s*(-e|-i|-f|--index-url|--extra-index-url|--find-links)\b", text, re.M)
        assert "file:" not in text and "git+" not in text


# Scaling out: N web and M worker containers against one PostgreSQL (through PgBouncer) and one Redis.
SCALED = ("web", "worker", "broadcaster")
APP = ("web", "worker", "broadcaster", "beat")
DEFAULT = re.compile(r"^\$\{([A-Z_]+):-(\d+)\}$")


def interpolated(value: object, overrides: dict[str, int] | None = None) -> int:
    """An integer compose field: a literal, or `${NAME:-default}` as compose reads it."""
    match = DEFAULT.match(str(value))
    if match is None:
        return int(value)  # type: ignore[call-overload]
    return (overrides or {}).get(match.group(1), int(match.group(2)))


def test_it_scales_web_and_workers_against_one_database_and_one_broker() -> None:
    services = compose()["services"]
    for name in SCALED:
        service = services[name]
        assert interpolated(service["deploy"]["replicas"]) >= 1, name
        assert "container_name" not in service and "ports" not in service, f"{name} cannot be replicated"
    assert "replicas" not in (services["postgres"].get("deploy") or {})
    assert "replicas" not in (services["redis"].get("deploy") or {})
    for name in APP:
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"] == "postgres://bounty@pgbouncer:5432/bounty", name
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
        # Transaction pooling: no connection kept by Django, no server-side cursor.
        assert (environment["DB_CONN_MAX_AGE"], environment["DB_DISABLE_SERVER_SIDE_CURSORS"]) == ("0", "1")
    bouncer = services["pgbouncer"]
    assert bouncer["environment"]["DATABASE_URL"] == "postgres://bounty@postgres:5432/bounty"
    assert bouncer["environment"]["POOL_MODE"] == "transaction"
    assert services["migrate"]["environment"]["DATABASE_URL"].startswith("postgres://bounty@postgres:")


def test_pgbouncer_takes_every_connection_a_large_deployment_opens() -> None:
    """At 10 web and 20 worker containers (each gunicorn with its most workers, 8; each Celery worker with
    CELERY_CONCURRENCY's default, 2), every client fits PgBouncer's limit and the pool stays well under
    PostgreSQL's default max_connections (100)."""
    services, large = compose()["services"], {"WEB_REPLICAS": 10, "WORKER_REPLICAS": 20}
    production = (ROOT / "bounty" / "settings_production.py").read_text()
    concurrency = int(re.search(r'envint\("CELERY_CONCURRENCY", (\d+)', production).group(1))  # type: ignore[union-attr]
    broadcaster = services["broadcaster"]["command"]
    clients = (
        interpolated(services["web"]["deploy"]["replicas"], large) * 8
        + interpolated(services["worker"]["deploy"]["replicas"], large) * concurrency
        + interpolated(services["broadcaster"]["deploy"]["replicas"], large)
        * int(broadcaster[broadcaster.index("--concurrency") + 1])
        + 1  # beat
    )
    bouncer = services["pgbouncer"]["environment"]
    assert clients <= int(bouncer["MAX_CLIENT_CONN"]), clients
    assert interpolated(bouncer["DEFAULT_POOL_SIZE"]) <= 100 - 10  # room for migrate, backups, psql


def test_verification_and_broadcast_have_queues_and_workers_of_their_own() -> None:
    services = compose()["services"]
    environment = services["worker"]["environment"]
    verify, broadcast = environment["CELERY_VERIFY_QUEUE"], environment["CELERY_BROADCAST_QUEUE"]
    assert len({verify, broadcast, environment["CELERY_QUEUE"]}) == 3
    for name in APP:  # every process routes and consumes by the same names
        assert services[name]["environment"]["CELERY_BROADCAST_QUEUE"] == broadcast
        assert services[name]["environment"]["CELERY_VERIFY_QUEUE"] == verify
    command = services["broadcaster"]["command"]
    assert command[command.index("-Q") + 1] == broadcast
    assert "-Q" not in services["worker"]["command"]  # every queue: one copy alone still runs everything
    hostnames = {
        services[name]["command"][services[name]["command"].index("--hostname") + 1] for name in SCALED[1:]
    }
    assert len(hostnames) == 2  # distinct node names, each made unique per container by %h


def test_nginx_spreads_requests_over_the_web_replicas_with_the_hosts_site_file() -> None:
    nginx = compose()["services"]["nginx"]
    assert "network_mode" not in nginx and {"80:80", "443:443"} <= set(nginx["ports"])
    script = nginx["command"][-1]
    substitution = re.search(r"sed 's/([^/]+)/([^/]+)/'", script)
    assert substitution is not None, script
    site = (DEPLOY / "nginx" / "bounty.conf").read_text()
    assert substitution.group(1) in site
    rewritten = site.replace(substitution.group(1), substitution.group(2))
    assert "server web:8000 " in rewritten and "127.0.0.1:8000" not in rewritten
    web = compose()["services"]["web"]["environment"]
    assert web["GUNICORN_BIND"] == "0.0.0.0:8000"

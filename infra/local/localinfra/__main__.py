"""Command line: python3 -m localinfra {install,up,down,reset,status,env,tools} [server ...].

`certificate <service> ...` prints export lines for each service's gRPC TLS files (mutual TLS),
issued by the local CA on first use.

`env` prints export lines for the servers as their operator (Kafka's admin, Vault's root token);
`env <service>` as one service instead: its Kafka principal (infra/kafka/acls.toml) and its Vault
token (infra/vault/policies/<service>.hcl).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys

from . import certificates, kafka, kafka_access, openbao, openbao_access, postgresql, tools
from .builds import BuildError
from .config import ConfigError, InfraConfig
from .prereqs import MissingPrerequisiteError, require
from .processes import StartupError
from .servers import SERVERS, Server


def _selected(names: list[str]) -> list[Server]:
    unknown = set(names) - {s.name for s in SERVERS}
    if unknown:
        raise ConfigError(
            f"unknown server(s) {sorted(unknown)}; choose from {', '.join(s.name for s in SERVERS)}"
        )
    return [s for s in SERVERS if not names or s.name in names]


def _install(config: InfraConfig, servers: list[Server]) -> None:
    require("java")  # checked first: without it nothing can run, whatever is cached
    for server in servers:
        server.install(config)


def _up(config: InfraConfig, servers: list[Server]) -> None:
    _install(config, servers)
    for server in servers:
        started = server.start(config)
        state = "started" if started else "already running"
        print(f"{server.name:10} {state:16} {server.address(config)}")


def _down(config: InfraConfig, servers: list[Server]) -> None:
    for server in reversed(servers):
        stopped = server.process(config).stop()
        print(f"{server.name:10} {'stopped' if stopped else 'not running'}")


def _reset(config: InfraConfig) -> None:
    """Stop every server and delete all their data."""
    _down(config, list(SERVERS))
    postgresql.forget(config)
    shutil.rmtree(config.data_dir, ignore_errors=True)


def _status(config: InfraConfig, servers: list[Server]) -> int:
    all_running = True
    for server in servers:
        pid = server.process(config).pid()
        all_running &= pid is not None
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"{server.name:10} {state:22} {server.address(config)}")
    return 0 if all_running else 3


def _env(config: InfraConfig, principal: str = kafka_access.ADMIN) -> None:
    if principal not in (kafka_access.ADMIN, *kafka_access.principals()):
        raise ConfigError(f"unknown Kafka principal {principal!r}; see infra/kafka/acls.toml")
    security = kafka.access(config)
    variables = security.client_env(config.kafka_bootstrap_servers, principal) | {
        "MONGODB_URL": config.mongodb_url,
        "VAULT_ADDR": config.vault_addr,
        "VAULT_TOKEN": _vault_token(config, principal),
    }
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    tool_config = security.folder / f"{principal}.properties"
    tool_config.write_text(security.client_properties(config.kafka_bootstrap_servers, principal))
    tool_config.chmod(0o600)
    print(f"# Kafka's own tools: --command-config {shlex.quote(str(tool_config))}")


def _vault_token(config: InfraConfig, principal: str) -> str:
    # The operator holds the root token; a service only its own (infra/vault/policies).
    if principal == kafka_access.ADMIN:
        return openbao.root_token(config) or ""
    return openbao_access.token(openbao.tokens_dir(config), principal) or ""


def _certificate(config: InfraConfig, service: str) -> None:
    # A service's certificate from the local CA (the one Kafka's access made), for gRPC mTLS.
    found = certificates.service_certificate(kafka.access(config).folder, service)
    for name, value in found.env(service).items():
        print(f"export {name}={shlex.quote(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localinfra", description=__doc__)
    commands = ["install", "up", "down", "reset", "status", "env", "tools", "certificate"]
    parser.add_argument("command", choices=commands)
    parser.add_argument("names", nargs="*", help="servers (or tools) to act on; default all")
    args = parser.parse_args(argv)
    try:
        config = InfraConfig.from_env()
        if args.command == "tools":
            print(tools.install(config, args.names))
            return 0
        if args.command == "certificate":
            for service in args.names:
                _certificate(config, service)
            return 0
        servers = _selected(args.names if args.command != "env" else [])
        if args.command == "install":
            _install(config, servers)
        elif args.command == "up":
            _up(config, servers)
        elif args.command == "down":
            _down(config, servers)
        elif args.command == "reset":
            _reset(config)
        elif args.command == "status":
            return _status(config, servers)
        else:
            _env(config, *args.names[:1])
    except (MissingPrerequisiteError, ConfigError, BuildError, StartupError) as error:
        print(f"localinfra: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

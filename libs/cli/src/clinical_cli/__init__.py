"""The `clinical` command line: log in through Keycloak, call the platform's services."""

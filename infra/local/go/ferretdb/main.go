// Command ferretdb runs FerretDB 1.24 (MongoDB wire protocol on PostgreSQL, or SQLite) for local
// development and tests. It wraps FerretDB's embeddable package because the upstream command refuses to start when
// installed from the module proxy (it expects build-time version files); the embeddable package
// also disables and locks telemetry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "", "SQLite directory URL (must end with a slash)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL connection URL")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: bad -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	config := ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	}
	switch {
	case *postgresqlURL != "" && *sqliteURL != "":
		fmt.Fprintln(os.Stderr, "ferretdb: give -postgresql-url or -sqlite-url, not both")
		os.Exit(2)
	case *postgresqlURL != "":
		config.Handler, config.PostgreSQLURL = "postgresql", *postgresqlURL
	case *sqliteURL == "":
		config.SQLiteURL = "file:data/"
	}

	server, err := ferretdb.New(&config)
	if err != nil {
		logger.Error("ferretdb failed to start", "error", err)
		os.Exit(1)
	}

	logger.Info("ferretdb listening", "uri", server.MongoDBURI())
	if err := server.Run(ctx); err != nil {
		logger.Error("ferretdb stopped with an error", "error", err)
		os.Exit(1)
	}
}

//go:build chaos

package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"prismflow/pipeline/pgserver"
)

// ownPostgres is a private PostgreSQL that one test owns, so that it can
// stop it and start it again on the same directory and port (the DSN the
// processes hold stays valid) without touching the server other tests
// share.
type ownPostgres struct {
	dir  string
	port int
	dsn  string
	srv  *pgserver.Server
}

func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	// Not t.TempDir: when the test runs as root, PostgreSQL runs as
	// another user, who must be able to reach the folder.
	dir, err := os.MkdirTemp("", "prismflow-chaos-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg := &ownPostgres{dir: dir, port: port}
	pg.start(t)
	pg.dsn = pg.srv.DSN()
	t.Cleanup(func() {
		if pg.srv != nil {
			pg.stop(t)
		}
		os.RemoveAll(dir)
	})
	return pg
}

// start starts the server on its directory and port.
func (pg *ownPostgres) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgserver.Start(ctx, pgserver.Config{Dir: pg.dir, Port: pg.port, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	if pg.dsn != "" && srv.DSN() != pg.dsn {
		t.Fatalf("PostgreSQL came back with DSN %s, want the one the processes hold", srv.DSN())
	}
	pg.srv = srv
}

// stop shuts the server down the way pg_ctl stop -m fast does (SIGINT to
// the postmaster: sessions are ended, open transactions rolled back) and
// waits for it to exit.
func (pg *ownPostgres) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.srv.Stop(ctx); err != nil {
		t.Errorf("stop PostgreSQL: %v", err)
	}
	pg.srv = nil
}

package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"prismflow/pipeline/pgserver"
)

// PostgresDSNEnv names the variable that points tests at an existing
// PostgreSQL server instead of a private one. The role in it must be
// allowed to create databases.
const PostgresDSNEnv = "PRISMFLOW_TEST_POSTGRES_DSN"

// testDBPrefix starts the name of every database Postgres creates, so
// that leftovers of a crashed test binary can be recognised and dropped.
const testDBPrefix = "prismflow_test_"

// Postgres returns the DSN of a fresh, empty database for this test,
// dropped when the test ends.
//
// The server is the one PRISMFLOW_TEST_POSTGRES_DSN names, if set;
// otherwise a private PostgreSQL (package pgserver) that this test binary
// starts on first use and shares between its tests. Postgres never falls
// back to a server that happens to listen on 127.0.0.1:5432.
//
// How the private server avoids both leaks and slow starts without a
// TestMain: it runs as a child of the test binary with a parent-death
// signal, so it stops when the binary exits, however it exits. Its
// directory is one of a few fixed per-user slots under os.TempDir, each
// guarded by an flock that the kernel releases when the binary exits.
// Test binaries that run at the same time (go test runs packages in
// parallel) take different slots, and later runs reuse a slot's cluster
// instead of running initdb again. Databases a crashed run left behind
// in a slot are dropped when the slot is next taken.
func Postgres(t testing.TB) string {
	t.Helper()
	server, err := postgresServer()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("testenv: connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	name := testDBPrefix + randomHex(8)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, server, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	dsn, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dsn
}

// private is the test binary's own server. It is package state on
// purpose: one server per process, whose lifetime is the process's.
var private struct {
	once sync.Once
	dsn  string
	err  error
	srv  *pgserver.Server
	lock *os.File // held open: closing it would release the slot
}

func postgresServer() (string, error) {
	if dsn := os.Getenv(PostgresDSNEnv); dsn != "" {
		return dsn, nil
	}
	private.once.Do(func() {
		private.dsn, private.err = startPrivate()
	})
	return private.dsn, private.err
}

const maxSlots = 32

func startPrivate() (string, error) {
	base := filepath.Join(os.TempDir(), fmt.Sprintf("prismflow-testpg-%d", os.Getuid()))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	// When tests run as root, PostgreSQL runs as another user, who must be
	// able to reach the slot directories.
	if err := os.Chmod(base, 0o755); err != nil {
		return "", err
	}
	for i := range maxSlots {
		lock, err := os.OpenFile(filepath.Join(base, fmt.Sprintf("slot-%d.lock", i)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return "", err
		}
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			lock.Close()
			continue
		}
		if err != nil {
			lock.Close()
			return "", fmt.Errorf("lock slot %d: %w", i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := pgserver.Start(ctx, pgserver.Config{
			Dir: filepath.Join(base, fmt.Sprintf("slot-%d", i)),
			Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			lock.Close()
			return "", err
		}
		private.srv, private.lock = srv, lock
		if err := dropLeftovers(ctx, srv.DSN()); err != nil {
			return "", err
		}
		return srv.DSN(), nil
	}
	return "", fmt.Errorf("all %d PostgreSQL test slots under %s are in use", maxSlots, base)
}

// dropLeftovers drops test databases a crashed earlier run left in the
// slot; the slot's flock guarantees no live test uses them.
func dropLeftovers(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, testDBPrefix)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := dropDatabase(ctx, dsn, name); err != nil {
			return err
		}
	}
	return nil
}

func dropDatabase(ctx context.Context, server, name string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	// FORCE ends sessions a test left open (pools closed late, leaks).
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// withDatabase returns dsn with its database replaced by name, for both
// URL and keyword/value DSNs.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DSN: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value form the last setting of a keyword wins.
	return dsn + " dbname=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

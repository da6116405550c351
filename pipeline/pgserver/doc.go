// Package pgserver runs a private PostgreSQL for prismflow when no DSN is
// configured, so a single binary works out of the box on one machine.
//
// # Layout
//
// Config.Dir is the server's own directory:
//
//	Dir/data      the cluster (PGDATA), created with initdb on first start
//	Dir/password  the generated password of the "prismflow" superuser
//
// Restarting on an existing Dir reuses the cluster and keeps all data.
//
// # Security
//
// The server listens only on 127.0.0.1 and on a unix socket inside the data
// directory. Authentication is scram-sha-256 with a random password made
// at initdb time and kept in Dir/password (mode 0600), not trust: "trust"
// on loopback would let every local user and every process on the host
// (or in a shared network namespace) own the database. The password ends
// up in the DSN that DSN returns, so treat that string as a secret.
//
// PostgreSQL refuses to run as root. When prismflow runs as root, initdb
// and postgres run as the "postgres" user (or "nobody" if there is none),
// Dir is handed over to that user, and Start checks that every parent of
// Dir is traversable by it, failing with an explanation otherwise.
//
// # Lifetime
//
// postgres runs as a direct child of prismflow (not daemonised by pg_ctl)
// with a parent-death signal: if prismflow dies for any reason, even
// SIGKILL, the kernel sends the postmaster SIGINT, which is PostgreSQL's
// fast shutdown. So no orphaned server outlives the process that owns it.
// Stop does the same fast shutdown on purpose (like pg_ctl stop -m fast).
// A postmaster.pid left by a crash does not block the next start: if its
// process is gone or is not a postgres, the file is removed; if an old
// postmaster on the same directory is still shutting down, Start waits for
// it.
package pgserver
